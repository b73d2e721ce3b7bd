using System.Text.Json;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Voices;

/// <summary>The voice library on disk: one folder per voice, written whole or not at all.</summary>
/// <remarks>
/// A new voice is assembled in .staging/ and renamed into place only when every sample has decoded
/// and the default engine has prepared it, so a failed upload never leaves anything behind; a deleted
/// voice is renamed out of the library before its files are removed. Nodes that share the data
/// directory each stage in a folder of their own and change the library one at a time, under a lock
/// on .library.lock that spans processes.
/// </remarks>
public sealed partial class VoiceLibrary : IDisposable
{
    private const string RecordFile = "voice.json";
    private const string StagingFolder = ".staging";
    private const string LockFile = ".library.lock";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    private readonly SemaphoreSlim gate = new(1, 1);
    private readonly AudioImporter importer;
    private readonly EngineHost engines;
    private readonly LimitOptions limits;
    private readonly ILogger<VoiceLibrary> logger;
    private FileStream? held;

    public VoiceLibrary(IOptions<TimbreOptions> options, AudioImporter importer, EngineHost engines, ILogger<VoiceLibrary> logger)
    {
        Root = options.Value.DataDirectory;
        limits = options.Value.Limits;
        this.importer = importer;
        this.engines = engines;
        this.logger = logger;
        Directory.CreateDirectory(Root);
        Staging = Path.Combine(Root, StagingFolder, "node-" + options.Value.Cluster.Node);
        if (Directory.Exists(Staging))
        {
            // Left by this node's crash mid-upload; never part of the library.
            Directory.Delete(Staging, recursive: true);
        }

        var lockFile = Path.Combine(Root, LockFile);
        if (!File.Exists(lockFile))
        {
            try
            {
                // Made once, here, so that a refused request never leaves the data directory changed.
                new FileStream(lockFile, FileMode.CreateNew, FileAccess.Write, FileShare.None).Dispose();
            }
            catch (IOException) when (File.Exists(lockFile))
            {
                // Another node made it first.
            }
        }

        var shared = Path.Combine(Root, StagingFolder);
        foreach (var left in Directory.Exists(shared) ? Directory.EnumerateDirectories(shared) : [])
        {
            if (!Path.GetFileName(left).StartsWith("node-", StringComparison.Ordinal))
            {
                // Staged by a release that kept no folder per node.
                Directory.Delete(left, recursive: true);
            }
        }
    }

    public string Root { get; }

    /// <summary>Where this node assembles voices and versions before they are renamed into the library.</summary>
    private string Staging { get; }

    /// <summary>A new folder name in this node's staging (an upload's files, a voice or version being assembled, a voice being deleted): beside the library, never in it, and cleared when the node starts.</summary>
    public string NewSpool(string prefix) => Path.Combine(Staging, prefix + "-" + Guid.NewGuid().ToString("n"));

    /// <summary>Waits until no other request, in this process or another node's, is changing the library.</summary>
    private async Task EnterAsync(CancellationToken ct)
    {
        await gate.WaitAsync(ct);
        try
        {
            var path = Path.Combine(Root, LockFile);
            while (true)
            {
                try
                {
                    // FileShare.None takes flock(LOCK_EX) on Linux: another process holding it makes this throw.
                    held = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                    return;
                }
                catch (IOException) when (File.Exists(path))
                {
                    await Task.Delay(25, ct);
                }
            }
        }
        catch
        {
            gate.Release();
            throw;
        }
    }

    private void Leave()
    {
        held?.Dispose();
        held = null;
        gate.Release();
    }

    public IReadOnlyList<VoiceRecord> List() =>
        Directory.EnumerateDirectories(Root)
            .Where(d => VoiceNames.IsValidId(Path.GetFileName(d)))
            .Select(d => Read(Path.GetFileName(d)))
            .OfType<VoiceRecord>()
            .OrderBy(v => v.Name, StringComparer.OrdinalIgnoreCase)
            .ToList();

    /// <summary>A voice by id, or by name (case-insensitive); null if there is none.</summary>
    public VoiceRecord? Find(string idOrName) =>
        (VoiceNames.IsValidId(idOrName) ? Read(idOrName) : null)
        ?? List().FirstOrDefault(v => string.Equals(v.Name, Canonical(idOrName), StringComparison.OrdinalIgnoreCase));

    /// <summary>The stored form of a name, or the text itself when it is not valid Unicode (it then matches no name).</summary>
    private static string Canonical(string name)
    {
        try
        {
            return VoiceNames.Canonical(name);
        }
        catch (ArgumentException)
        {
            return name;
        }
    }

    /// <summary>The voice's folder, or null when the id is malformed; never a path outside the library.</summary>
    public string? FolderOf(string id)
    {
        if (!VoiceNames.IsValidId(id))
        {
            return null;
        }

        var full = Path.GetFullPath(Path.Combine(Root, id));
        return full.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? full : null;
    }

    /// <summary>What the engines read: the samples, and the prompt and reference enrolment chose (voices enrolled before there were none).</summary>
    public IReadOnlyList<EngineSample> EngineSamples(VoiceRecord voice) => SamplesIn(FolderOf(voice.Id)!, voice);

    private static List<EngineSample> SamplesIn(string folder, VoiceRecord voice)
    {
        var samples = ZeroShotSamplesIn(folder, voice);
        if (voice.ActiveVersion is > 0 and var n && voice.Versions.Any(v => v.Number == n))
        {
            // The engine the version was trained for reads it; others serve the zero-shot clone.
            samples.Add(new EngineSample(Path.Combine(folder, VersionsFolder, n.ToString(System.Globalization.CultureInfo.InvariantCulture)), null, "model"));
        }

        return samples;
    }

    /// <summary>What the engines read for the zero-shot clone: what an evaluation compares a candidate with.</summary>
    public IReadOnlyList<EngineSample> ZeroShotSamples(VoiceRecord voice) => ZeroShotSamplesIn(FolderOf(voice.Id)!, voice);

    private static List<EngineSample> ZeroShotSamplesIn(string folder, VoiceRecord voice)
    {
        var samples = voice.Samples.Select(s => new EngineSample(Path.Combine(folder, s.File), s.Transcript)).ToList();
        if (voice.Prompt is { } prompt)
        {
            samples.Add(new EngineSample(Path.Combine(folder, prompt.File), prompt.Transcript, "prompt"));
        }

        if (voice.Reference is { } reference)
        {
            samples.Add(new EngineSample(Path.Combine(folder, reference), null, "reference"));
        }

        return samples;
    }

    public async Task<VoiceRecord> CreateAsync(NewVoice upload, CancellationToken ct)
    {
        var id = VoiceNames.Slug(upload.Name);
        var staging = NewSpool("voice");
        await EnterAsync(ct);
        try
        {
            if (Directory.Exists(Path.Combine(Root, id)) || Find(upload.Name) is not null)
            {
                throw new VoiceConflictException($"A voice named \"{upload.Name}\" (id '{id}') already exists; choose another name or delete it first.");
            }

            Directory.CreateDirectory(Path.Combine(staging, "samples"));
            var imported = new List<(VoiceSampleRecord Record, string Raw)>();
            for (var i = 0; i < upload.Files.Count; i++)
            {
                var file = upload.Files[i];
                var original = $"samples/original-{i + 1}{file.Extension.ToLowerInvariant()}";
                File.Move(file.TempPath, Path.Combine(staging, original));
                var normalised = $"samples/sample-{i + 1}.wav";
                var seconds = await importer.ImportAsync(
                    Path.Combine(staging, original), file.Extension, file.FileName, Path.Combine(staging, normalised), limits.MaxSampleSeconds, ct);
                var raw = Path.Combine(staging, $"unnormalised-{i + 1}.wav");
                await importer.DecodeUnnormalisedAsync(Path.Combine(staging, original), raw, ct);
                var transcript = i < upload.Transcripts.Count && !string.IsNullOrWhiteSpace(upload.Transcripts[i]) ? upload.Transcripts[i].Trim() : null;
                imported.Add((new VoiceSampleRecord(normalised, original, file.FileName, transcript, Math.Round(seconds, 3)), raw));
            }

            // Score, trim and transcribe the samples; choose the prompt and the reference.
            var report = await engines.EnrolAsync(
                staging,
                imported.Select(s => new EnrolmentSample(Path.Combine(staging, s.Record.File), s.Raw, s.Record.OriginalName, s.Record.Transcript)).ToList(),
                upload.Language,
                ct);
            foreach (var (_, raw) in imported)
            {
                File.Delete(raw);
            }

            var samples = imported.Select((s, i) => s.Record with
            {
                DurationSeconds = report.Samples[i].Seconds,
                Transcript = report.Samples[i].Transcript,
                TranscriptSource = report.Samples[i].TranscriptSource,
            }).ToList();
            var prompt = report.Prompt is { } p ? new VoicePromptRecord(p.File, p.Transcript, p.TranscriptSource) : null;
            var record = new VoiceRecord(id, VoiceNames.Canonical(upload.Name), upload.Language, DateTimeOffset.UtcNow, samples, null)
            {
                Prompt = prompt,
                Reference = report.Reference?.File,
                Quality = report.Json,
            };
            var profile = await engines.PrepareVoiceAsync(engines.DefaultEngine, staging, SamplesIn(staging, record), ct);
            record = record with { Profiles = new Dictionary<string, Dictionary<string, JsonElement>> { [engines.DefaultEngine] = profile } };
            await File.WriteAllTextAsync(Path.Combine(staging, RecordFile), JsonSerializer.Serialize(record, Json), ct);
            Directory.Move(staging, Path.Combine(Root, id));
            LogCreated(id, samples.Count);
            return record;
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            Leave();
        }
    }

    public async Task<bool> DeleteAsync(string id, CancellationToken ct)
    {
        var folder = FolderOf(id);
        if (folder is null)
        {
            return false;
        }

        await EnterAsync(ct);
        try
        {
            if (!File.Exists(Path.Combine(folder, RecordFile)))
            {
                return false;
            }

            var doomed = NewSpool("deleted");
            Directory.CreateDirectory(Path.GetDirectoryName(doomed)!);
            Directory.Move(folder, doomed);
            Directory.Delete(doomed, recursive: true);
            LogDeleted(id);
            return true;
        }
        finally
        {
            Leave();
        }
    }

    public void Dispose()
    {
        held?.Dispose();
        gate.Dispose();
    }

    private VoiceRecord? Read(string id)
    {
        var folder = FolderOf(id);
        if (folder is null)
        {
            return null;
        }

        var path = Path.Combine(folder, RecordFile);
        try
        {
            return JsonSerializer.Deserialize<VoiceRecord>(File.ReadAllText(path), Json);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (JsonException e)
        {
            LogUnreadable(path, e.Message);
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Voice {Id} created from {Count} samples")]
    private partial void LogCreated(string id, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Voice {Id} deleted")]
    private partial void LogDeleted(string id);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Skipping unreadable voice record {Path}: {Error}")]
    private partial void LogUnreadable(string path, string error);
}

/// <summary>A stored voice (voice.json).</summary>
public sealed record VoiceRecord(
    string Id,
    string Name,
    string? Language,
    DateTimeOffset CreatedAt,
    IReadOnlyList<VoiceSampleRecord> Samples,
    Dictionary<string, Dictionary<string, JsonElement>>? Profiles)
{
    /// <summary>The 3–15 s segment Qwen3 clones from, and its transcript.</summary>
    public VoicePromptRecord? Prompt { get; init; }

    /// <summary>Up to 30 s of the voice's best speech, which XTTS conditions on.</summary>
    public string? Reference { get; init; }

    /// <summary>The enrolment's quality report, as the API shows it.</summary>
    public JsonElement? Quality { get; init; }

    /// <summary>Fine-tuned versions, oldest first; version 0 is the zero-shot clone and is not listed here.</summary>
    public IReadOnlyList<VoiceVersionRecord> Versions { get; init; } = [];

    /// <summary>The version speech uses; 0 (or null, for voices stored before versions) is the zero-shot clone.</summary>
    public int? ActiveVersion { get; init; }
}

/// <summary>One stored sample: the trimmed, normalised copy, the original as uploaded, its transcript and where that came from (user, pocketsphinx, whisper).</summary>
public sealed record VoiceSampleRecord(string File, string OriginalFile, string OriginalName, string? Transcript, double DurationSeconds)
{
    public string? TranscriptSource { get; init; }
}

/// <summary>The prompt segment of a voice: its file and transcript.</summary>
public sealed record VoicePromptRecord(string File, string? Transcript, string? TranscriptSource);

/// <summary>An upload that passed request validation, its files already spooled to disk.</summary>
public sealed record NewVoice(string Name, string? Language, IReadOnlyList<SpooledFile> Files, IReadOnlyList<string> Transcripts);

public sealed record SpooledFile(string FileName, string Extension, string TempPath);

/// <summary>A voice with that name or id exists.</summary>
public sealed class VoiceConflictException(string message) : Exception(message);
