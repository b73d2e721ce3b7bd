using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Cluster;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Tests;

/// <summary>A worker's copies of other nodes' samples: what a request uses is kept, what none used for long is removed.</summary>
public sealed class NodeSamplesTests : IDisposable
{
    private readonly DirectoryInfo work = Directory.CreateTempSubdirectory("timbre-node-samples-");

    [Fact]
    public async Task Copies_and_voice_folders_unused_for_KeepUnusedDays_are_removed_and_those_in_use_kept()
    {
        var store = new NodeSamples(Options.Create(new TimbreOptions { DataDirectory = work.FullName, Cluster = { KeepUnusedDays = 30 } }));
        var (old, used) = (Audio.Espeak("A voice no one asks for any more."), Audio.Espeak("A voice in use."));
        var (oldHash, usedHash) = (Convert.ToHexStringLower(SHA256.HashData(old)), Convert.ToHexStringLower(SHA256.HashData(used)));
        Assert.Equal(NodeSamples.Saved.Ok, await store.SaveAsync(oldHash, new MemoryStream(old), 1 << 24, CancellationToken.None));
        Assert.Equal(NodeSamples.Saved.Ok, await store.SaveAsync(usedHash, new MemoryStream(used), 1 << 24, CancellationToken.None));
        var oldVoice = store.VoiceOf([new NodeSampleRef(oldHash, "A voice no one asks for any more.", "prompt")]);
        File.WriteAllText(Path.Combine(oldVoice.Folder, "profile.json"), "{}");
        var samples = Path.Combine(work.FullName, "cluster", "samples");
        var deadUpload = Path.Combine(samples, $".{oldHash}.0123.part");
        File.WriteAllBytes(deadUpload, [1, 2, 3]);

        // All of it last used a day ago; then a request uses one voice, which marks what it names.
        foreach (var path in new[] { Path.Combine(samples, oldHash + ".wav"), Path.Combine(samples, usedHash + ".wav"), deadUpload })
        {
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddDays(-1));
        }

        Directory.SetLastWriteTimeUtc(oldVoice.Folder, DateTime.UtcNow.AddDays(-1));
        var usedVoice = store.VoiceOf([new NodeSampleRef(usedHash, null, null)]);

        // 28 days on, everything was used within 30 days; 29.5 days on, what was last used a day before is not.
        Assert.Equal(0, store.Prune(DateTime.UtcNow.AddDays(28)));
        Assert.True(store.Has(oldHash));
        Assert.Equal(3, store.Prune(DateTime.UtcNow.AddDays(29.5)));
        Assert.False(store.Has(oldHash));
        Assert.False(Directory.Exists(oldVoice.Folder));
        Assert.False(File.Exists(deadUpload));
        Assert.True(store.Has(usedHash));
        Assert.True(Directory.Exists(usedVoice.Folder));
    }

    public void Dispose() => work.Delete(recursive: true);
}
