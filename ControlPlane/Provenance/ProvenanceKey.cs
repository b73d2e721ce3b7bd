using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Provenance;

/// <summary>
/// This install's secret for the provenance mark: {data}/provenance.key, 32 random bytes in hex, mode
/// 0600, created on first start and never replaced. The Python side derives the mark's pattern from
/// it; this side derives each clip's payload tag. It is never logged or served.
/// </summary>
public sealed class ProvenanceKey
{
    public const string FileName = "provenance.key";
    private const int Bytes = 32;
    private readonly byte[] secret;

    public ProvenanceKey(IOptions<TimbreOptions> options)
    {
        Directory.CreateDirectory(options.Value.DataDirectory);
        Path = System.IO.Path.Combine(options.Value.DataDirectory, FileName);
        secret = LoadOrCreate(Path);
    }

    public string Path { get; }

    /// <summary>
    /// The 32-bit payload a clip's audio carries: HMAC-SHA256 of "timbre provenance clip {id}" under the
    /// key, first four bytes, big-endian. Only the generation log can turn it back into the clip.
    /// </summary>
    public uint TagOf(string clipId)
    {
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes("timbre provenance clip " + clipId), mac);
        return BinaryPrimitives.ReadUInt32BigEndian(mac);
    }

    private static byte[] LoadOrCreate(string path)
    {
        if (!File.Exists(path))
        {
            // Written aside and moved into place, so a crash never leaves a half-written key behind,
            // and a key another process created meanwhile wins (the move does not overwrite).
            var temporary = path + "." + Guid.NewGuid().ToString("n") + ".tmp";
            var created = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                created.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var file = new FileStream(temporary, created))
            {
                file.Write(Encoding.ASCII.GetBytes(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(Bytes)) + "\n"));
                file.Flush(flushToDisk: true);
            }

            try
            {
                File.Move(temporary, path, overwrite: false);
            }
            catch (IOException) when (File.Exists(path))
            {
                File.Delete(temporary);
            }
        }

        byte[] key;
        try
        {
            key = Convert.FromHexString(File.ReadAllText(path).Trim());
        }
        catch (FormatException)
        {
            throw new InvalidOperationException($"{path} is not a provenance key (64 hex digits). Restore it from a backup; a new key could not find the marks made with the old one.");
        }

        return key.Length == Bytes
            ? key
            : throw new InvalidOperationException($"{path} holds {key.Length} bytes, not {Bytes}. Restore it from a backup; a new key could not find the marks made with the old one.");
    }
}
