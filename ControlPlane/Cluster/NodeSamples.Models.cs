using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;

namespace Timbre.ControlPlane.Cluster;

/// <summary>
/// A worker's copies of the fine-tuned versions fronts send (<c>{data}/cluster/models/{digest}/</c>): a
/// version folder arrives once as a tar stream, is checked against its folder digest, and is then named by
/// that digest in requests (role <c>model</c>), like a sample by its SHA-256.
/// </summary>
public sealed partial class NodeSamples
{
    /// <summary>More entries than any trainer writes: a tar of thousands of tiny files is refused.</summary>
    public const int MaxModelEntries = 10_000;

    public bool HasModel(string digest) => Directory.Exists(ModelPathOf(digest));

    private string ModelPathOf(string digest) => Path.Combine(models, digest);

    /// <summary>
    /// The digest of a version folder (remote.folder_digest in Python computes it on the front): the SHA-256 of
    /// one line per regular file, <c>"{file's SHA-256} {size} {path relative to the folder, with /}\n"</c>,
    /// sorted by that path's UTF-8 bytes.
    /// </summary>
    private static string Digest(IEnumerable<(string Path, string Hash, long Size)> files)
    {
        var listing = new StringBuilder();
        foreach (var (path, hash, size) in files.OrderBy(f => Encoding.UTF8.GetBytes(f.Path), Utf8Order.Instance))
        {
            listing.Append(hash).Append(' ').Append(size.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(' ').Append(path).Append('\n');
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(listing.ToString())));
    }

    public enum SavedModel
    {
        Ok,
        TooLarge,
        NotTar,
        BadEntry,
        Mismatch,
        NoSpace,
    }

    /// <summary>
    /// Unpacks a tar stream of a version folder beside the copies and moves it into place when its folder
    /// digest is <paramref name="digest"/>. Only regular files and directories, with relative paths inside
    /// the folder, are taken; anything else refuses the whole upload and leaves nothing behind.
    /// </summary>
    /// <param name="digest">The folder digest the front named it by.</param>
    /// <param name="body">The tar stream.</param>
    /// <param name="maxBytes">The most its files may hold together.</param>
    /// <param name="minFreeBytes">Free space each file must leave on the disk: the stream's length is not known ahead.</param>
    /// <param name="ct">The front leaving.</param>
    /// <returns>The outcome, and for <see cref="SavedModel.BadEntry"/> the entry's name and why.</returns>
    public async Task<(SavedModel Outcome, string? Why)> SaveModelAsync(string digest, Stream body, long maxBytes, long minFreeBytes, CancellationToken ct)
    {
        Directory.CreateDirectory(models);
        var temp = Path.Combine(models, $".{digest}.{Guid.NewGuid():n}.part");
        Directory.CreateDirectory(temp);
        try
        {
            var files = new List<(string Path, string Hash, long Size)>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            long total = 0;
            var reader = new TarReader(body, leaveOpen: true);
            while (true)
            {
                TarEntry? entry;
                try
                {
                    entry = await reader.GetNextEntryAsync(copyData: false, ct);
                }
                catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
                {
                    return (SavedModel.NotTar, e.Message);
                }

                if (entry is null)
                {
                    break;
                }

                if (entry.EntryType is TarEntryType.GlobalExtendedAttributes)
                {
                    continue;
                }

                if (names.Count >= MaxModelEntries)
                {
                    return (SavedModel.BadEntry, $"more than {MaxModelEntries} entries");
                }

                var name = entry.Name.TrimEnd('/');
                if (!IsSafeName(name))
                {
                    return (SavedModel.BadEntry, $"'{entry.Name}' is not a relative path inside the folder");
                }

                var target = Path.Combine(temp, name);
                if (entry.EntryType is TarEntryType.Directory)
                {
                    Directory.CreateDirectory(target);
                    continue;
                }

                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
                {
                    return (SavedModel.BadEntry, $"'{entry.Name}' is a {entry.EntryType} entry; a version folder holds regular files and directories only");
                }

                if (!names.Add(name))
                {
                    return (SavedModel.BadEntry, $"'{entry.Name}' comes twice");
                }

                total += entry.Length;
                if (total > maxBytes)
                {
                    return (SavedModel.TooLarge, null);
                }

                if (Hosting.Uploads.FreeBytes(temp) - entry.Length < minFreeBytes)
                {
                    return (SavedModel.NoSpace, $"'{entry.Name}' needs {entry.Length / 1e9:0.0} GB and the disk has {Hosting.Uploads.FreeBytes(temp) / 1e9:0.0} GB free");
                }

                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                await using (var file = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
                {
                    if (entry.DataStream is { } data)
                    {
                        var buffer = new byte[1 << 16];
                        int read;
                        while ((read = await data.ReadAsync(buffer, ct)) > 0)
                        {
                            hash.AppendData(buffer, 0, read);
                            await file.WriteAsync(buffer.AsMemory(0, read), ct);
                        }
                    }

                    await file.FlushAsync(ct);
                    file.Flush(flushToDisk: true);
                }

                files.Add((name, Convert.ToHexStringLower(hash.GetHashAndReset()), entry.Length));
            }

            if (Digest(files) != digest)
            {
                return (SavedModel.Mismatch, null);
            }

            try
            {
                Directory.Move(temp, ModelPathOf(digest));
            }
            catch (IOException) when (HasModel(digest))
            {
                // Another front sent the same version meanwhile.
            }

            return (SavedModel.Ok, null);
        }
        finally
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }
        }
    }

    // Relative, inside the folder, and portable: no root, no '.' or '..' step, no empty step, no backslash or NUL.
    private static bool IsSafeName(string name) =>
        name.Length is > 0 and <= 1024
        && !name.StartsWith('/')
        && !name.Contains('\\', StringComparison.Ordinal)
        && !name.Contains('\0', StringComparison.Ordinal)
        && name.Split('/').All(step => step is not ("" or "." or ".."));

    private sealed class Utf8Order : IComparer<byte[]>
    {
        public static readonly Utf8Order Instance = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}
