using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Voices;

namespace Timbre.ControlPlane.FineTuning;

/// <summary>Runs queued jobs: dataset preparation and fine-tuning (enrol, train, evaluate, deploy), as child processes.</summary>
/// <remarks>
/// Two lanes: one GPU job at a time (a second would not fit beside the loaded engine), and one CPU
/// job at a time pinned to one core, so speech keeps the rest. A job that was running when the
/// server stopped is marked interrupted at start-up; resuming it reruns its stage, and the trainers
/// continue from their last checkpoint. Nodes that share the data directory share the queue: each job
/// runs on the node that claimed it (JobRunner.Nodes.cs).
/// </remarks>
public sealed partial class JobRunner(
    JobStore store,
    JobEvents events,
    RecipeProcess recipes,
    VoiceLibrary voices,
    EngineHost engines,
    IOptions<TimbreOptions> options,
    ILogger<JobRunner> logger) : BackgroundService
{
    // The running jobs: their cancellation and their lane (GPU or CPU).
    private readonly ConcurrentDictionary<string, (CancellationTokenSource Cts, bool Gpu)> running = new();
    // Jobs a person cancelled; any other cancellation of a running job is the server stopping.
    private readonly ConcurrentDictionary<string, bool> cancelRequested = new();
    private readonly SemaphoreSlim wake = new(0);
    private readonly FineTuningOptions settings = options.Value.FineTuning;

    /// <summary>Tells the runner a job was queued.</summary>
    public void Wake() => wake.Release();

    /// <summary>Cancels a queued or running job; false when it had already ended.</summary>
    public bool Cancel(string id)
    {
        if (store.CancelQueued(id))
        {
            events.Append(id, Status(JobStatus.Cancelled, "cancelled before it ran"));
            return true;
        }

        if (running.TryGetValue(id, out var job))
        {
            cancelRequested[id] = true;
            job.Cts.Cancel();
            return true;
        }

        // Running on another node that shares the data directory: it sees the request within 2 s.
        return store.RequestCancel(id);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        foreach (var pid in store.RunningPids())
        {
            recipes.StopLeftover(pid);
        }

        foreach (var job in store.InterruptRunning())
        {
            events.Append(job.Id, Status(JobStatus.Interrupted, "the server stopped while this job ran; resume it to continue from its last checkpoint"));
            LogInterrupted(job.Id);
        }

        var tasks = new List<Task>();
        while (!stoppingToken.IsCancellationRequested)
        {
            LookAtOtherNodes();
            foreach (var job in store.Queued())
            {
                var gpu = job.IsGpu;
                if (running.Values.Any(r => r.Gpu == gpu))
                {
                    continue; // that lane is busy
                }

                var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                if (!running.TryAdd(job.Id, (cts, gpu)))
                {
                    cts.Dispose();
                    continue;
                }

                if (!store.Claim(job.Id, job.Kind == "prepare" ? "prepare" : "start"))
                {
                    // Another node sharing the data directory took it first, or it was cancelled.
                    running.TryRemove(job.Id, out _);
                    cts.Dispose();
                    continue;
                }

                tasks.Add(RunAsync(job, cts));
            }

            tasks.RemoveAll(t => t.IsCompleted);
            try
            {
                await wake.WaitAsync(TimeSpan.FromSeconds(2), stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        // Stopping: the running jobs' processes are signalled by their tokens; they end as interrupted.
        await Task.WhenAll(tasks);
    }

    private async Task RunAsync(JobRecord job, CancellationTokenSource cts)
    {
        var ct = cts.Token;
        var folder = store.JobFolder(job.Id);
        Directory.CreateDirectory(folder);
        try
        {
            events.Append(job.Id, Status(JobStatus.Running, null, job.Kind == "prepare" ? "prepare" : null));
            var result = job.Kind == "prepare" ? await PrepareAsync(job, folder, ct) : await FineTuneAsync(job, folder, ct);
            store.Ended(job.Id, JobStatus.Succeeded, null, result.ToJsonString());
            var done = Status(JobStatus.Succeeded, null);
            done["result"] = result;
            events.Append(job.Id, done);
            LogSucceeded(job.Id);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // A cancel from the API, or the server stopping (then the job is resumable).
            var stopping = !cancelRequested.TryRemove(job.Id, out _);
            var status = stopping ? JobStatus.Interrupted : JobStatus.Cancelled;
            var why = stopping ? "the server stopped while this job ran; resume it to continue from its last checkpoint" : "cancelled";
            store.Ended(job.Id, status, why, null);
            MarkDataset(job, status, why);
            if (!stopping)
            {
                CleanUp(job, folder);
            }

            events.Append(job.Id, Status(status, why));
            LogEnded(job.Id, status);
        }
        catch (JobFailedException e)
        {
            store.Ended(job.Id, JobStatus.Failed, e.Message, null);
            MarkDataset(job, "failed", e.Message);
            events.Append(job.Id, Status(JobStatus.Failed, e.Message));
            LogFailed(job.Id, e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or JsonException)
        {
            var message = e is IOException io && io.HResult == 28 ? "the disk is full: free space in the data directory and resume the job" : e.Message;
            store.Ended(job.Id, JobStatus.Failed, message, null);
            MarkDataset(job, "failed", message);
            events.Append(job.Id, Status(JobStatus.Failed, message));
            LogFault(e, job.Id);
        }
        finally
        {
            running.TryRemove(job.Id, out _);
            cts.Dispose();
            wake.Release();
        }
    }

    private async Task<JsonObject> PrepareAsync(JobRecord job, string folder, CancellationToken ct)
    {
        var dataset = store.DatasetFolder(job.DatasetId!);
        var prepared = Path.Combine(dataset, "prepared");
        if (Directory.Exists(prepared))
        {
            Directory.Delete(prepared, recursive: true); // a rerun starts clean: preparation is quick
        }

        var recordings = Directory.EnumerateFiles(Path.Combine(dataset, "recordings"))
            .Where(f => !f.EndsWith(".txt", StringComparison.OrdinalIgnoreCase)).Order(StringComparer.Ordinal).ToList();
        var report = await RunRecipeAsync(
            job, folder, ["prepare", "--out", prepared, "--speaker", store.GetDataset(job.DatasetId!)?.Name ?? "speaker", "--asr-check", "sample", .. recordings],
            "Preparing the dataset", ct)
            ?? throw new JobFailedException("Preparing the dataset failed: it ended without a report.");

        report.Remove("type");
        report.Remove("stage");
        report.Remove("time");
        store.UpdateDataset(job.DatasetId!, "ready", report.ToJsonString(), null);
        return new JsonObject { ["dataset"] = job.DatasetId, ["minutes_kept"] = report["minutes_kept"]?.DeepClone() };
    }

    /// <summary>
    /// Runs one recipe (args[0] is its command) with its log beside the job's other files, its pid and events recorded;
    /// fails the job with "<paramref name="what"/> failed: …" unless it succeeds. Returns its result event, if it sent one.
    /// </summary>
    private async Task<JsonObject?> RunRecipeAsync(JobRecord job, string folder, string[] args, string what, CancellationToken ct)
    {
        JsonObject? result = null;
        var outcome = await recipes.RunAsync(
            args,
            Path.Combine(folder, args[0] + ".log"),
            pid => store.SetPid(job.Id, pid),
            e => result = OnEvent(job.Id, e) ?? result,
            ct);
        ct.ThrowIfCancellationRequested();
        if (!outcome.Succeeded)
        {
            throw new JobFailedException($"{what} failed: {outcome.Describe()}");
        }

        return result;
    }

    /// <summary>The cores a recipe may use: none for a GPU job (it runs on the GPU), else the CPU lane's.</summary>
    private string Cores(JobRecord job) => job.IsGpu ? "0" : settings.CpuCores.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private async Task<JsonObject> FineTuneAsync(JobRecord job, string folder, CancellationToken ct)
    {
        var dataset = store.GetDataset(job.DatasetId!) ?? throw new JobFailedException($"The dataset '{job.DatasetId}' was deleted; start a new job with another dataset.");
        var prepared = Path.Combine(store.DatasetFolder(dataset.Id), "prepared");
        var voice = await EnsureVoiceAsync(job, dataset, prepared, ct);

        // Train: the trainer resumes from the checkpoints in version/work when there are any.
        Stage(job.Id, "train");
        var version = Path.Combine(folder, "version");
        await RunRecipeAsync(
            job, folder, ["train", "--engine", job.Engine!, "--engine-options", engines.OptionsJson(job.Engine!), "--dataset", prepared, "--out", version, "--options", job.Options, "--cores", Cores(job)],
            "Training", ct);

        // Evaluate the candidate against the zero-shot clone of the same voice.
        Stage(job.Id, "evaluate");
        var samplesFile = Path.Combine(folder, "samples.json");
        await File.WriteAllTextAsync(samplesFile, JsonSerializer.Serialize(voices.ZeroShotSamples(voice).Select(s => new { path = s.Path, transcript = s.Transcript, role = s.Role })), ct);
        var reportFile = Path.Combine(folder, "evaluation.json");
        await RunRecipeAsync(
            job, folder, ["evaluate", "--engine", job.Engine!, "--engine-options", engines.OptionsJson(job.Engine!), "--dataset", prepared, "--voice-dir", voices.FolderOf(voice.Id)!,
             "--samples", samplesFile, "--candidate", version, "--report", reportFile, "--max-clips", settings.EvaluationClips.ToString(System.Globalization.CultureInfo.InvariantCulture),
             "--cores", Cores(job)],
            "Evaluation", ct);

        // Deploy: a new version of the voice, active when it beat zero-shot (or when forced).
        Stage(job.Id, "deploy");
        var evaluation = JsonDocument.Parse(await File.ReadAllTextAsync(reportFile, ct)).RootElement.Clone();
        var better = evaluation.GetProperty("better").GetBoolean();
        var activate = better || job.Force;
        VoiceVersionRecord added;
        try
        {
            added = await voices.AddVersionAsync(voice.Id, version, new NewVoiceVersion(job.Engine!, job.Id, dataset.Id, evaluation, better), activate, CancellationToken.None);
        }
        catch (VoiceNotFoundException e)
        {
            throw new JobFailedException(e.Message);
        }

        // The checkpoints are spent once the version is in the library.
        Directory.Delete(Path.Combine(version, "work"), recursive: true);
        return new JsonObject
        {
            ["voice"] = voice.Id,
            ["version"] = added.Number,
            ["activated"] = activate,
            ["better"] = better,
            ["evaluation"] = JsonNode.Parse(evaluation.GetRawText()),
            ["note"] = activate ? null : "the fine-tuned version evaluated worse than the zero-shot clone; it is kept but not active (activate it yourself, or run with force)",
        };
    }

    /// <summary>The job's voice; a new name is enrolled first from about 15 s of the dataset's cleanest clips, as the zero-shot clone.</summary>
    private async Task<VoiceRecord> EnsureVoiceAsync(JobRecord job, DatasetRecord dataset, string prepared, CancellationToken ct)
    {
        if ((job.VoiceId is { } known ? voices.Find(known) : voices.Find(job.Voice!)) is { } existing)
        {
            store.SetVoice(job.Id, existing.Id);
            return existing;
        }

        Stage(job.Id, "enrol");
        var clips = File.ReadLines(Path.Combine(prepared, "metadata_train.csv")).Select(l => l.Split('|', 2)).Where(p => p.Length == 2).ToList();
        var files = new List<SpooledFile>();
        var transcripts = new List<string>();
        var seconds = 0.0;
        var spool = voices.NewSpool("enrol");
        Directory.CreateDirectory(spool);
        try
        {
            // Clips spread over the dataset, up to about 15 s: what a person would record to enrol.
            foreach (var clip in clips.Where((_, i) => i % Math.Max(1, clips.Count / 6) == 0))
            {
                var source = Path.Combine(prepared, "wavs", clip[0] + ".wav");
                var copy = Path.Combine(spool, clip[0] + ".wav");
                File.Copy(source, copy);
                files.Add(new SpooledFile(clip[0] + ".wav", ".wav", copy));
                transcripts.Add(clip[1]);
                seconds += new FileInfo(source).Length / (24000.0 * 2);
                if (seconds >= 15 || files.Count >= 10)
                {
                    break;
                }
            }

            try
            {
                var voice = await voices.CreateAsync(new NewVoice(job.Voice!, "en", files, transcripts), ct);
                store.SetVoice(job.Id, voice.Id);
                events.Append(job.Id, new JsonObject { ["type"] = "progress", ["stage"] = "enrol", ["message"] = $"created the voice '{voice.Name}' from {seconds:0} s of the dataset as its zero-shot clone" });
                return voice;
            }
            catch (Exception e) when (e is InvalidAudioException or EngineInputException or VoiceConflictException)
            {
                throw new JobFailedException($"The voice '{job.Voice}' could not be enrolled from the dataset: {e.Message}");
            }
        }
        finally
        {
            Directory.Delete(spool, recursive: true);
        }
    }

    /// <summary>Stores and forwards a recipe's event; returns it when it is the result.</summary>
    private JsonObject? OnEvent(string jobId, JsonObject e)
    {
        var stored = events.Append(jobId, e);
        var stage = stored["stage"]?.GetValue<string>() ?? "";
        if (stored["type"]?.GetValue<string>() is "progress" or "warning")
        {
            store.Progressed(jobId, stage, stored.ToJsonString());
        }

        return stored["type"]?.GetValue<string>() == "result" ? stored : null;
    }

    private void Stage(string jobId, string stage)
    {
        store.Progressed(jobId, stage, new JsonObject { ["stage"] = stage }.ToJsonString());
        events.Append(jobId, Status(JobStatus.Running, null, stage));
    }

    private void MarkDataset(JobRecord job, string status, string? error)
    {
        if (job.Kind == "prepare" && job.DatasetId is { } id)
        {
            store.UpdateDataset(id, status, null, error);
        }
    }

    /// <summary>A cancelled job leaves nothing behind but its events and logs.</summary>
    private void CleanUp(JobRecord job, string folder)
    {
        var version = Path.Combine(folder, "version");
        if (Directory.Exists(version))
        {
            Directory.Delete(version, recursive: true);
        }

        if (job.Kind == "prepare" && job.DatasetId is { } id && Directory.Exists(Path.Combine(store.DatasetFolder(id), "prepared")))
        {
            Directory.Delete(Path.Combine(store.DatasetFolder(id), "prepared"), recursive: true);
        }
    }

    private static JsonObject Status(string status, string? message, string? stage = null) => new()
    {
        ["type"] = "status",
        ["status"] = status,
        ["stage"] = stage,
        ["message"] = message,
    };

    public override void Dispose()
    {
        wake.Dispose();
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {Id} was running when the server stopped; marked interrupted")]
    private partial void LogInterrupted(string id);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {Id} succeeded")]
    private partial void LogSucceeded(string id);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {Id} ended: {Status}")]
    private partial void LogEnded(string id, string status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {Id} failed: {Reason}")]
    private partial void LogFailed(string id, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {Id} failed on a fault")]
    private partial void LogFault(Exception e, string id);
}

/// <summary>A job cannot finish; the message is for the person who started it.</summary>
public sealed class JobFailedException(string message) : Exception(message);
