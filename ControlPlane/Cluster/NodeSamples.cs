using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Speech;
using Timbre.ControlPlane.Voices;

namespace Timbre.ControlPlane.Cluster;

/// <summary>
/// A worker's copies of the samples fronts send (<c>{data}/cluster/samples/{sha256}.wav</c>), of the
/// fine-tuned versions they send (<c>{data}/cluster/models/{digest}/</c>, NodeSamples.Models.cs), and a folder
/// per voice for the engines' caches (<c>{data}/cluster/voices/</c>). Content-addressed: a copy is never
/// changed, only added, so two fronts sending the same sample at once both end with it. Each request
/// marks what it uses (the files' modification time); what no request used for
/// Timbre:Cluster:KeepUnusedDays is removed, and a front sends it again when next it is needed.
/// </summary>
public sealed partial class NodeSamples
{
    private readonly string samples;
    private readonly string models;
    private readonly string voices;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTime> marked = new();

    public NodeSamples(IOptions<TimbreOptions> options)
    {
        var root = Path.Combine(options.Value.DataDirectory, "cluster");
        samples = Path.Combine(root, "samples");
        models = Path.Combine(root, "models");
        voices = Path.Combine(root, "voices");
        Keep = TimeSpan.FromDays(options.Value.Cluster.KeepUnusedDays);
    }

    /// <summary>How long a copy or a voice folder is kept after the last request that used it.</summary>
    public TimeSpan Keep { get; }

    public enum Saved
    {
        Ok,
        TooLarge,
        NotWav,
        Mismatch,
    }

    public static bool IsDigest(string? s) => s is { Length: 64 } && s.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));

    public bool Has(string sha256) => File.Exists(PathOf(sha256));

    private string PathOf(string sha256) => Path.Combine(samples, sha256 + ".wav");

    /// <summary>Stores <paramref name="body"/> as the sample <paramref name="sha256"/> if its content has that hash.</summary>
    public async Task<Saved> SaveAsync(string sha256, Stream body, long maxBytes, CancellationToken ct)
    {
        Directory.CreateDirectory(samples);
        var temp = Path.Combine(samples, $".{sha256}.{Guid.NewGuid():n}.part");
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var head = new byte[12];
            var headLength = 0;
            long length = 0;
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await body.ReadAsync(buffer, ct)) > 0)
                {
                    length += read;
                    if (length > maxBytes)
                    {
                        return Saved.TooLarge;
                    }

                    var take = Math.Min(read, head.Length - headLength);
                    buffer.AsSpan(0, take).CopyTo(head.AsSpan(headLength));
                    headLength += take;
                    hash.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), ct);
                }

                await file.FlushAsync(ct);
                file.Flush(flushToDisk: true);
            }

            if (headLength < 12 || !head.AsSpan(0, 4).SequenceEqual("RIFF"u8) || !head.AsSpan(8, 4).SequenceEqual("WAVE"u8))
            {
                return Saved.NotWav;
            }

            if (Convert.ToHexStringLower(hash.GetHashAndReset()) != sha256)
            {
                return Saved.Mismatch;
            }

            try
            {
                File.Move(temp, PathOf(sha256));
            }
            catch (IOException) when (Has(sha256))
            {
                // Another front sent the same content meanwhile.
            }

            return Saved.Ok;
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>True when this node holds what the reference names: a sample, or a version folder (role model).</summary>
    public bool Holds(NodeSampleRef r) => r.Role == "model" ? HasModel(r.Sha256!) : Has(r.Sha256!);

    /// <summary>The voice the samples make, with a folder of its own for the engines' caches (a voice profile).</summary>
    public NodeVoice VoiceOf(IReadOnlyList<NodeSampleRef> refs)
    {
        var identity = string.Join('\n', refs.Select(r => $"{r.Role ?? "sample"}:{r.Sha256}:{r.Transcript}"));
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..32];
        var folder = Path.Combine(voices, id);
        Directory.CreateDirectory(folder);
        MarkUsed(folder, directory: true);
        foreach (var r in refs)
        {
            MarkUsed(r.Role == "model" ? ModelPathOf(r.Sha256!) : PathOf(r.Sha256!), directory: r.Role == "model");
        }

        var engineSamples = refs.Select(r => r.Role == "model"
            ? new EngineSample(ModelPathOf(r.Sha256!), null, "model")
            : new EngineSample(PathOf(r.Sha256!), string.IsNullOrWhiteSpace(r.Transcript) ? null : r.Transcript, r.Role ?? "sample")).ToList();
        var record = new VoiceRecord("node-" + id[..12], "a voice another node sent", null, DateTimeOffset.UnixEpoch, [], null);
        return new NodeVoice(record, folder, engineSamples);
    }

    // Marks a copy or folder as used now, at most once an hour each: pruning counts in days, and a voice
    // that speaks all day need not write its files' metadata on every request.
    private void MarkUsed(string path, bool directory)
    {
        var now = DateTime.UtcNow;
        if (marked.TryGetValue(path, out var last) && now - last < TimeSpan.FromHours(1))
        {
            return;
        }

        if (directory)
        {
            Directory.SetLastWriteTimeUtc(path, now);
        }
        else
        {
            File.SetLastWriteTimeUtc(path, now);
        }

        marked[path] = now;
    }

    /// <summary>
    /// Removes the copies, version folders, voice folders and dead uploads (.part) that no request has used since
    /// <paramref name="now"/> less <see cref="Keep"/>; returns how many.
    /// </summary>
    public int Prune(DateTime now)
    {
        var before = now - Keep;
        var removed = 0;
        foreach (var file in Directory.Exists(samples) ? Directory.EnumerateFiles(samples) : [])
        {
            if (File.GetLastWriteTimeUtc(file) < before)
            {
                File.Delete(file);
                marked.TryRemove(file, out _);
                removed++;
            }
        }

        var folders = new[] { models, voices }.Where(Directory.Exists).SelectMany(Directory.EnumerateDirectories);
        foreach (var folder in folders)
        {
            if (Directory.GetLastWriteTimeUtc(folder) < before)
            {
                Directory.Delete(folder, recursive: true);
                marked.TryRemove(folder, out _);
                removed++;
            }
        }

        return removed;
    }
}

/// <summary>On a worker (Timbre:Cluster:NodeKey set), prunes its copies of other nodes' samples once an hour.</summary>
public sealed partial class NodeSamplesPruner(NodeSamples store, IOptions<TimbreOptions> options, ILogger<NodeSamplesPruner> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (string.IsNullOrEmpty(options.Value.Cluster.NodeKey))
        {
            return;
        }

        using var hourly = new PeriodicTimer(TimeSpan.FromHours(1));
        do
        {
            try
            {
                if (store.Prune(DateTime.UtcNow) is > 0 and var removed)
                {
                    LogPruned(removed, store.Keep.TotalDays);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogPruneFailed(e);
            }
        }
        while (await hourly.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Removed {Count} samples or voice folders that other nodes sent and no request used for {Days} days")]
    private partial void LogPruned(int count, double days);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not prune the samples other nodes sent; trying again in an hour")]
    private partial void LogPruneFailed(Exception e);
}
