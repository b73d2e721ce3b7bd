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

    [Fact]
    public async Task A_version_is_kept_only_whole_and_checked_and_is_pruned_like_a_sample()
    {
        var store = new NodeSamples(Options.Create(new TimbreOptions { DataDirectory = work.FullName, Cluster = { KeepUnusedDays = 30 } }));
        var folder = Directory.CreateDirectory(Path.Combine(work.FullName, "front-version")).FullName;
        File.WriteAllText(Path.Combine(folder, "version.json"), "{\"engine\": \"classic\"}");
        Directory.CreateDirectory(Path.Combine(folder, "model"));
        File.WriteAllBytes(Path.Combine(folder, "model", "weights.bin"), new byte[5000]);
        var digest = NodeTests.FolderDigest(folder);
        var tar = NodeTests.Tar(("version.json", File.ReadAllBytes(Path.Combine(folder, "version.json"))), ("model/weights.bin", new byte[5000]));
        var models = Path.Combine(work.FullName, "cluster", "models");

        // A disk that would keep less than the free space it must: refused before the file is written.
        var (full, why) = await store.SaveModelAsync(digest, new MemoryStream(tar), 1 << 20, long.MaxValue / 2, CancellationToken.None);
        Assert.Equal(NodeSamples.SavedModel.NoSpace, full);
        Assert.Contains("GB free", why, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(models));
        Assert.Equal(NodeSamples.SavedModel.TooLarge, (await store.SaveModelAsync(digest, new MemoryStream(tar), 4096, 0, CancellationToken.None)).Outcome);
        Assert.Empty(Directory.EnumerateFileSystemEntries(models));

        Assert.Equal(NodeSamples.SavedModel.Ok, (await store.SaveModelAsync(digest, new MemoryStream(tar), 1 << 20, 0, CancellationToken.None)).Outcome);
        Assert.True(store.HasModel(digest));
        var voice = store.VoiceOf([new NodeSampleRef(digest, null, "model")]);
        Assert.Equal(("model", Path.Combine(models, digest)), (voice.Samples[0].Role, voice.Samples[0].Path));

        Directory.SetLastWriteTimeUtc(Path.Combine(models, digest), DateTime.UtcNow.AddDays(-1));
        Assert.Equal(0, store.Prune(DateTime.UtcNow.AddDays(28)));
        Assert.True(store.Prune(DateTime.UtcNow.AddDays(29.5)) >= 1);
        Assert.False(store.HasModel(digest));
    }

    public void Dispose() => work.Delete(recursive: true);
}
