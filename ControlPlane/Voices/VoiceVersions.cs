using System.Globalization;
using System.Text.Json;

namespace Timbre.ControlPlane.Voices;

/// <summary>Fine-tuned versions of a voice: versions/N/ in its folder, and which one speech uses.</summary>
/// <remarks>
/// A version folder is moved in whole before voice.json names it, and voice.json is replaced by a
/// rename, so a crash leaves the voice as it was or with the new version, never half of one.
/// </remarks>
public sealed partial class VoiceLibrary
{
    private const string VersionsFolder = "versions";

    /// <summary>Adds the trained version in <paramref name="source"/> (its work/ folder left behind) and activates it when asked.</summary>
    public async Task<VoiceVersionRecord> AddVersionAsync(string id, string source, NewVoiceVersion version, bool activate, CancellationToken ct)
    {
        await EnterAsync(ct);
        try
        {
            var voice = Read(id) ?? throw new VoiceNotFoundException($"The voice '{id}' was deleted while the job ran; the trained version is kept in the job's folder.");
            var folder = FolderOf(id)!;
            var number = voice.Versions.Select(v => v.Number).DefaultIfEmpty(0).Max() + 1;
            var target = Path.Combine(folder, VersionsFolder, number.ToString(CultureInfo.InvariantCulture));
            var staging = NewSpool("version");
            Directory.CreateDirectory(staging);
            foreach (var file in Directory.EnumerateFiles(source))
            {
                File.Copy(file, Path.Combine(staging, Path.GetFileName(file)));
            }

            // A GPU version's model folder is gigabytes: moved, not copied (the job folder is on the same disk).
            foreach (var folderIn in Directory.EnumerateDirectories(source).Where(d => Path.GetFileName(d) != "work"))
            {
                Directory.Move(folderIn, Path.Combine(staging, Path.GetFileName(folderIn)));
            }

            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            Directory.Move(staging, target);
            var record = new VoiceVersionRecord(number, version.Engine, DateTimeOffset.UtcNow, version.JobId, version.DatasetId, version.Evaluation, version.Better);
            var updated = voice with
            {
                Versions = [.. voice.Versions, record],
                ActiveVersion = activate ? number : voice.ActiveVersion,
            };
            await WriteRecordAsync(folder, updated, ct);
            LogVersionAdded(id, number, activate);
            return record;
        }
        finally
        {
            Leave();
        }
    }

    /// <summary>Makes version <paramref name="number"/> the one speech uses (0: the zero-shot clone).</summary>
    public async Task<VoiceRecord> ActivateAsync(string id, int number, CancellationToken ct)
    {
        await EnterAsync(ct);
        try
        {
            var voice = Read(id) ?? throw new VoiceNotFoundException($"No voice with id '{id}'. GET /v1/voices lists them.");
            if (number != 0 && voice.Versions.All(v => v.Number != number))
            {
                var known = string.Join(", ", voice.Versions.Select(v => v.Number).Prepend(0));
                throw new VoiceNotFoundException($"The voice '{id}' has no version {number}; its versions are {known} (0 is the zero-shot clone).");
            }

            var updated = voice with { ActiveVersion = number };
            await WriteRecordAsync(FolderOf(id)!, updated, ct);
            LogVersionActivated(id, number);
            return updated;
        }
        finally
        {
            Leave();
        }
    }

    private static async Task WriteRecordAsync(string folder, VoiceRecord record, CancellationToken ct)
    {
        var path = Path.Combine(folder, RecordFile);
        var temp = path + ".tmp";
        await File.WriteAllTextAsync(temp, JsonSerializer.Serialize(record, Json), ct);
        File.Move(temp, path, overwrite: true);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Voice {Id}: version {Number} added (active: {Active})")]
    private partial void LogVersionAdded(string id, int number, bool active);

    [LoggerMessage(Level = LogLevel.Information, Message = "Voice {Id}: version {Number} activated")]
    private partial void LogVersionActivated(string id, int number);
}

/// <summary>A fine-tuned version: which engine reads it, where it came from, how it evaluated against the zero-shot clone.</summary>
public sealed record VoiceVersionRecord(int Number, string Engine, DateTimeOffset CreatedAt, string? JobId, string? DatasetId, JsonElement? Evaluation, bool Better);

/// <summary>What a finished job tells the library about the version it trained.</summary>
public sealed record NewVoiceVersion(string Engine, string JobId, string DatasetId, JsonElement? Evaluation, bool Better);

/// <summary>No such voice or version; the message says what exists.</summary>
public sealed class VoiceNotFoundException(string message) : Exception(message);
