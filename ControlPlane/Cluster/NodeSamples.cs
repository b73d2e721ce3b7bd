using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Speech;
using Timbre.ControlPlane.Voices;

namespace Timbre.ControlPlane.Cluster;

/// <summary>
/// A worker's copies of the samples fronts send (<c>{data}/cluster/samples/{sha256}.wav</c>), and a folder
/// per voice for the engines' caches (<c>{data}/cluster/voices/</c>). Content-addressed: a copy is never
/// changed, only added, so two fronts sending the same sample at once both end with it.
/// </summary>
public sealed class NodeSamples
{
    private readonly string samples;
    private readonly string voices;

    public NodeSamples(IOptions<TimbreOptions> options)
    {
        var root = Path.Combine(options.Value.DataDirectory, "cluster");
        samples = Path.Combine(root, "samples");
        voices = Path.Combine(root, "voices");
    }

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

    /// <summary>The voice the samples make, with a folder of its own for the engines' caches (a voice profile).</summary>
    public NodeVoice VoiceOf(IReadOnlyList<NodeSampleRef> refs)
    {
        var identity = string.Join('\n', refs.Select(r => $"{r.Role ?? "sample"}:{r.Sha256}:{r.Transcript}"));
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..32];
        var folder = Path.Combine(voices, id);
        Directory.CreateDirectory(folder);
        var engineSamples = refs.Select(r => new EngineSample(PathOf(r.Sha256!), string.IsNullOrWhiteSpace(r.Transcript) ? null : r.Transcript, r.Role ?? "sample")).ToList();
        var record = new VoiceRecord("node-" + id[..12], "a voice another node sent", null, DateTimeOffset.UnixEpoch, [], null);
        return new NodeVoice(record, folder, engineSamples);
    }
}
