using System.Net;

namespace Timbre.FineTune;

/// <summary>One scripted run: upload, prepare, train, evaluate, deploy; cancels the job on Ctrl-C.</summary>
internal sealed class Run(TimbreApi api, Options options, IRunView view)
{
    private static readonly string[] AudioExtensions = [".wav", ".mp3", ".flac", ".ogg", ".m4a"];
    private string? currentJob;

    public async Task<int> ExecuteAsync(CancellationToken cancel)
    {
        List<Recording> recordings;
        try
        {
            recordings = Find(options.Paths);
        }
        catch (ArgumentException e)
        {
            view.Error(e.Message);
            return 2;
        }

        var minutesHint = recordings.Count(r => r.Transcript is not null);
        view.Info($"{recordings.Count} recordings ({recordings.Sum(r => r.Bytes) / 1e6:0.0} MB, {minutesHint} with transcripts) → voice '{options.Name}' on {options.Engine}, at {api.BaseUri}");
        try
        {
            return await view.RunAsync(sink => Pipeline(recordings, sink, cancel));
        }
        catch (TimbreApiException e)
        {
            view.Error(e.Detail);
            return e.Status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden ? 2 : (int)e.Status is >= 400 and < 500 ? 2 : 1;
        }
        catch (HttpRequestException e)
        {
            view.Error($"Timbre is not reachable at {api.BaseUri} ({e.Message}); start it with ops/run, or set TIMBRE_URL.");
            return 1;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            return await CancelAsync();
        }
    }

    private async Task<int> Pipeline(List<Recording> recordings, IStageSink sink, CancellationToken cancel)
    {
        var total = recordings.Sum(r => r.Bytes);
        long sent = 0;
        var progress = new Progress<long>(n => sink.Upload(Interlocked.Add(ref sent, n), total));
        var dataset = await api.CreateDatasetAsync(options.Name, recordings, progress, cancel);
        sink.Upload(total, total);
        var datasetId = dataset.GetProperty("id").GetString()!;
        currentJob = dataset.GetProperty("job").GetProperty("id").GetString();
        var prepared = await FollowAsync(currentJob!, sink, cancel);
        if (prepared != "succeeded")
        {
            view.Error($"Preparing the recordings {prepared}: {(await api.GetAsync($"v1/datasets/{datasetId}", cancel)).GetProperty("error").GetString()}");
            return 3;
        }

        var report = (await api.GetAsync($"v1/datasets/{datasetId}", cancel)).GetProperty("report");
        view.Dataset(report);
        var job = await api.PostJsonAsync("v1/finetune/jobs", new { dataset = datasetId, engine = options.Engine, voice = options.Name, options = options.TrainerOptions, force = options.Force }, cancel);
        currentJob = job.GetProperty("id").GetString();
        foreach (var warning in job.GetProperty("warnings").EnumerateArray())
        {
            view.Info("warning: " + warning.GetString());
        }

        var ended = await FollowAsync(currentJob!, sink, cancel);
        var final = await api.GetAsync($"v1/finetune/jobs/{currentJob}", cancel);
        if (ended != "succeeded")
        {
            view.Error($"The job {ended}: {final.GetProperty("error").GetString()}");
            return ended == "cancelled" ? 130 : 3;
        }

        var result = final.GetProperty("result");
        view.Evaluation(result.GetProperty("evaluation"));
        var activated = result.GetProperty("activated").GetBoolean();
        var number = result.GetProperty("version").GetInt32();
        var voice = result.GetProperty("voice").GetString();
        if (activated)
        {
            view.Info($"Voice '{voice}' version {number} is active: speak with voice \"{voice}\".");
            return 0;
        }

        view.Info($"Voice '{voice}' version {number} evaluated worse than the zero-shot clone and is kept but not active; activate it with POST /v1/voices/{voice}/versions/{number}/activate, or rerun with --force.");
        return 4;
    }

    /// <summary>Shows a job's events until it ends; an interruption (the server restarted) is resumed.</summary>
    private async Task<string> FollowAsync(string jobId, IStageSink sink, CancellationToken cancel)
    {
        for (var resumes = 0; ; resumes++)
        {
            string? status = null;
            await foreach (var e in api.EventsAsync(jobId, cancel))
            {
                sink.Event(e);
                if (e.GetProperty("type").GetString() == "status" && e.GetProperty("status").GetString() is { } s && s is "succeeded" or "failed" or "cancelled" or "interrupted")
                {
                    status = s;
                }
            }

            if (status != "interrupted" || resumes >= 3)
            {
                return status ?? "ended without a status";
            }

            view.Info("Timbre restarted while the job ran; resuming it from its last checkpoint.");
            await api.PostJsonAsync($"v1/finetune/jobs/{jobId}/resume", new { }, cancel);
        }
    }

    private async Task<int> CancelAsync()
    {
        if (currentJob is null)
        {
            view.Error("Cancelled before anything was sent.");
            return 130;
        }

        view.Info($"Cancelling {currentJob}…");
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await api.DeleteAsync($"v1/finetune/jobs/{currentJob}", wait.Token);
            while (!wait.IsCancellationRequested)
            {
                var job = await api.GetAsync($"v1/finetune/jobs/{currentJob}", wait.Token);
                if (job.GetProperty("status").GetString() is "cancelled" or "failed" or "succeeded")
                {
                    view.Error($"Job {currentJob} {job.GetProperty("status").GetString()}.");
                    break;
                }

                await Task.Delay(500, wait.Token);
            }
        }
        catch (Exception e) when (e is TimbreApiException or HttpRequestException or OperationCanceledException)
        {
            view.Error($"Could not confirm the cancel of {currentJob}: {e.Message}");
        }

        return 130;
    }

    /// <summary>Recordings among the paths (folders searched one level down), each with the .txt of the same name beside it.</summary>
    private static List<Recording> Find(IReadOnlyList<string> paths)
    {
        var files = new List<string>();
        foreach (var p in paths)
        {
            if (Directory.Exists(p))
            {
                files.AddRange(Directory.EnumerateFiles(p).Where(IsAudio).Order(StringComparer.Ordinal));
            }
            else if (File.Exists(p))
            {
                files.Add(IsAudio(p) ? p : throw new ArgumentException($"{p} is not a recording ({string.Join(", ", AudioExtensions)})"));
            }
            else
            {
                throw new ArgumentException($"{p} does not exist");
            }
        }

        if (files.Count == 0)
        {
            throw new ArgumentException($"no recordings ({string.Join(", ", AudioExtensions)}) in {string.Join(", ", paths)}");
        }

        return files.Select(f =>
        {
            var text = Path.ChangeExtension(f, ".txt");
            return new Recording(f, File.Exists(text) ? text : null, new FileInfo(f).Length);
        }).ToList();
    }

    private static bool IsAudio(string path) => AudioExtensions.Contains(Path.GetExtension(path), StringComparer.OrdinalIgnoreCase);
}
