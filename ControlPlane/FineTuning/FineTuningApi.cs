using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Voices;

namespace Timbre.ControlPlane.FineTuning;

/// <summary>/v1/datasets and /v1/finetune/jobs: upload recordings, prepare them, train, watch, cancel, resume.</summary>
public static class FineTuningApi
{
    private static readonly string[] Recordings = [".wav", ".mp3", ".flac", ".ogg", ".m4a"];

    /// <summary>Minutes of training speech below which an engine refuses a dataset, and below which it warns.</summary>
    public static (double Refuse, double Warn) MinimumMinutes(string engine) => engine == "classic" ? (2, 2) : (10, 60);

    public static WebApplicationBuilder AddFineTuning(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<JobStore>();
        builder.Services.AddSingleton<JobEvents>();
        builder.Services.AddSingleton<RecipeProcess>();
        builder.Services.AddSingleton<JobRunner>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<JobRunner>());
        return builder;
    }

    public static WebApplication MapFineTuning(this WebApplication app)
    {
        var datasets = app.MapGroup("/v1/datasets").WithTags("Fine-tuning");
        datasets.MapPost("/", CreateDataset).DisableAntiforgery();
        datasets.MapGet("/", ListDatasets);
        datasets.MapGet("/{id}", GetDataset);
        datasets.MapDelete("/{id}", DeleteDataset);
        var jobs = app.MapGroup("/v1/finetune/jobs").WithTags("Fine-tuning");
        jobs.MapPost("/", CreateJob);
        jobs.MapGet("/", ListJobs);
        jobs.MapGet("/{id}", GetJob);
        jobs.MapDelete("/{id}", CancelJob);
        jobs.MapPost("/{id}/resume", ResumeJob);
        jobs.MapGet("/{id}/events", JobEventStream);
        var versions = app.MapGroup("/v1/voices/{id}/versions").WithTags("Voices");
        versions.MapGet("/", ListVersions);
        versions.MapPost("/{number:int}/activate", ActivateVersion);
        app.MapHub<JobsHub>("/hubs/jobs");
        return app;
    }

    // -- datasets ---------------------------------------------------------------------------

    public static async Task<Results<Accepted<DatasetResponse>, ProblemHttpResult>> CreateDataset(
        HttpContext http, JobStore store, JobRunner runner, IOptions<TimbreOptions> options, CancellationToken ct)
    {
        var limits = options.Value.FineTuning;
        if (!http.Request.HasFormContentType)
        {
            return Problems.BadRequest("Send multipart/form-data with the recordings as 'files' (WAV, MP3, FLAC, OGG or M4A, up to 2 h each), their transcripts as NAME.txt files beside them or as 'transcripts' fields, and an optional 'name'.");
        }

        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodyLimit)
        {
            bodyLimit.MaxRequestBodySize = limits.MaxDatasetBytes;
        }

        if (http.Request.ContentLength is { } length && Uploads.FreeBytes(store.Root) - length < limits.MinFreeBytes)
        {
            return Problems.Create(StatusCodes.Status507InsufficientStorage, $"The upload needs {length / 1e9:0.0} GB and the data directory's disk has {Uploads.FreeBytes(store.Root) / 1e9:0.0} GB free; free space (at least {limits.MinFreeBytes / 1e9:0.#} GB must stay free) and try again.");
        }

        IFormCollection form;
        try
        {
            form = await http.Request.ReadFormAsync(new FormOptions { MultipartBodyLengthLimit = limits.MaxDatasetBytes }, ct);
        }
        catch (Exception e) when (e is BadHttpRequestException or InvalidDataException or IOException)
        {
            return Problems.TooLarge($"The upload could not be read ({e.Message}). A dataset may be at most {limits.MaxDatasetBytes / (1024 * 1024 * 1024.0):0.#} GB in all (Timbre:FineTuning:MaxDatasetBytes).");
        }

        var files = form.Files.GetFiles("files");
        var audio = files.Where(f => Recordings.Contains(Path.GetExtension(f.FileName), StringComparer.OrdinalIgnoreCase)).ToList();
        var texts = files.Where(f => Path.GetExtension(f.FileName).Equals(".txt", StringComparison.OrdinalIgnoreCase)).ToList();
        if (files.FirstOrDefault(f => !audio.Contains(f) && !texts.Contains(f)) is { } odd)
        {
            return Problems.BadRequest($"{odd.FileName}: unsupported file type; send recordings ({string.Join(", ", Recordings)}) and transcripts (.txt named like their recording).", "files");
        }

        if (audio.Count == 0)
        {
            return Problems.BadRequest("Attach at least one recording as 'files' (WAV, MP3, FLAC, OGG or M4A).", "files");
        }

        var stems = audio.Select(f => Path.GetFileNameWithoutExtension(f.FileName)).ToList();
        if (stems.GroupBy(s => s, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            return Problems.BadRequest($"Two recordings are named '{twice.Key}'; give each a different name (their transcripts are matched by name).", "files");
        }

        if (texts.FirstOrDefault(t => !stems.Contains(Path.GetFileNameWithoutExtension(t.FileName), StringComparer.OrdinalIgnoreCase)) is { } orphan)
        {
            return Problems.BadRequest($"{orphan.FileName} names no recording: a transcript is the .txt of the same name as its recording ({string.Join(", ", audio.Select(a => a.FileName).Take(5))}).", "files");
        }

        var transcripts = form["transcripts"].Select(t => t ?? "").ToList();
        if (transcripts.Count > audio.Count)
        {
            return Problems.BadRequest($"{transcripts.Count} transcripts for {audio.Count} recordings; send at most one per recording, in the same order.", "transcripts");
        }

        var name = form["name"].ToString().Trim();
        if (name.Length > 100)
        {
            return Problems.BadRequest("name may be at most 100 characters.", "name");
        }

        var id = "ds-" + Guid.NewGuid().ToString("n")[..12];
        var folder = Path.Combine(store.DatasetFolder(id), "recordings");
        Directory.CreateDirectory(folder);
        try
        {
            for (var i = 0; i < audio.Count; i++)
            {
                // Stored under a safe name; the order of upload is kept in the prefix.
                var stem = $"{i + 1:000}-{SafeName(stems[i])}";
                await using (var target = File.Create(Path.Combine(folder, stem + Path.GetExtension(audio[i].FileName).ToLowerInvariant())))
                {
                    await audio[i].CopyToAsync(target, ct);
                }

                var text = i < transcripts.Count && !string.IsNullOrWhiteSpace(transcripts[i]) ? transcripts[i]
                    : texts.FirstOrDefault(t => Path.GetFileNameWithoutExtension(t.FileName).Equals(stems[i], StringComparison.OrdinalIgnoreCase)) is { } file
                        ? await ReadTextAsync(file, ct) : null;
                if (text is not null)
                {
                    await File.WriteAllTextAsync(Path.Combine(folder, stem + ".txt"), text, ct);
                }
            }
        }
        catch (IOException e)
        {
            Directory.Delete(store.DatasetFolder(id), recursive: true);
            return Problems.Create(StatusCodes.Status507InsufficientStorage, $"The recordings could not be stored ({e.Message}); free space in the data directory and try again.");
        }

        var jobId = "job-" + Guid.NewGuid().ToString("n")[..12];
        var dataset = new DatasetRecord(id, name.Length > 0 ? name : id, "preparing", DateTimeOffset.UtcNow) { JobId = jobId };
        store.InsertDataset(dataset);
        store.InsertJob(new JobRecord(jobId, "prepare", id, null, null, "{}", false, JobStatus.Queued, DateTimeOffset.UtcNow));
        runner.Wake();
        return TypedResults.Accepted($"/v1/datasets/{id}", DatasetResponse.From(dataset, store.GetJob(jobId)));
    }

    public static Ok<DatasetResponse[]> ListDatasets(JobStore store) =>
        TypedResults.Ok(store.ListDatasets().Select(d => DatasetResponse.From(d, d.JobId is { } j ? store.GetJob(j) : null)).ToArray());

    public static Results<Ok<DatasetResponse>, ProblemHttpResult> GetDataset(string id, JobStore store) =>
        store.GetDataset(id) is { } d
            ? TypedResults.Ok(DatasetResponse.From(d, d.JobId is { } j ? store.GetJob(j) : null))
            : Problems.NotFound($"No dataset with id '{id}'. GET /v1/datasets lists them.");

    public static Results<NoContent, ProblemHttpResult> DeleteDataset(string id, JobStore store)
    {
        if (store.GetDataset(id) is not { } dataset)
        {
            return Problems.NotFound($"No dataset with id '{id}'. GET /v1/datasets lists them.");
        }

        var users = store.ActiveFor(id);
        if (users.Count > 0)
        {
            var list = string.Join(", ", users.Select(j => $"{j.Id} ({j.Status})"));
            return Problems.Create(StatusCodes.Status409Conflict, $"The dataset is in use by {list}; cancel those jobs (DELETE /v1/finetune/jobs/{{id}}) first, then delete it.");
        }

        store.DeleteDataset(dataset.Id);
        if (Directory.Exists(store.DatasetFolder(dataset.Id)))
        {
            Directory.Delete(store.DatasetFolder(dataset.Id), recursive: true);
        }

        return TypedResults.NoContent();
    }

    // -- jobs -------------------------------------------------------------------------------

    public static Results<Accepted<JobResponse>, ProblemHttpResult> CreateJob(NewJobRequest request, JobStore store, JobRunner runner, EngineHost engines, VoiceLibrary voices)
    {
        if (string.IsNullOrWhiteSpace(request.Dataset))
        {
            return Problems.BadRequest("dataset is required: the id POST /v1/datasets returned.", "dataset");
        }

        var engine = (request.Engine ?? "classic").Trim().ToLowerInvariant();
        if (!EngineOptions.Known.Contains(engine))
        {
            return Problems.BadRequest($"engine '{request.Engine}' cannot be fine-tuned: use {string.Join(", ", EngineOptions.Known)}.", "engine");
        }

        if (string.IsNullOrWhiteSpace(request.Voice))
        {
            return Problems.BadRequest("voice is required: the name of a new voice, or the id or name of one to add a version to.", "voice");
        }

        if (voices.Find(request.Voice) is null && VoiceNames.Validate(request.Voice) is { } nameError)
        {
            return Problems.BadRequest(nameError, "voice");
        }

        var optionsJson = request.Options is { ValueKind: JsonValueKind.Object } o ? o.GetRawText() : "{}";
        if (request.Options is { ValueKind: not (JsonValueKind.Object or JsonValueKind.Null or JsonValueKind.Undefined) })
        {
            return Problems.BadRequest("options must be a JSON object of the trainer's settings (see the README's fine-tuning section).", "options");
        }

        if (store.GetDataset(request.Dataset) is not { } dataset)
        {
            return Problems.BadRequest($"No dataset with id '{request.Dataset}'. Upload one with POST /v1/datasets; GET /v1/datasets lists them.", "dataset");
        }

        if (dataset.Status != "ready")
        {
            return dataset.Status == "preparing"
                ? Problems.Create(StatusCodes.Status409Conflict, $"The dataset '{dataset.Id}' is still being prepared; start the job when GET /v1/datasets/{dataset.Id} says ready.", "dataset")
                : Problems.BadRequest($"The dataset '{dataset.Id}' is {dataset.Status}: {dataset.Error ?? "it has no usable speech"}. Upload the recordings again.", "dataset");
        }

        var (refuse, warn) = MinimumMinutes(engine);
        var minutes = dataset.TrainMinutes;
        if (minutes < refuse)
        {
            return Problems.BadRequest($"The dataset has {minutes:0.0} min of usable training speech; the {engine} trainer needs at least {refuse:0} min ({warn:0} min or more is recommended). Add recordings.", "dataset");
        }

        if (engine != "classic" && engines.Describe(engine) is { Available: false } unusable)
        {
            return Problems.BadRequest($"The {engine} engine cannot run on this machine, so it cannot be trained here: {unusable.Reason}", "engine");
        }

        var job = new JobRecord("job-" + Guid.NewGuid().ToString("n")[..12], "finetune", dataset.Id, engine, request.Voice.Trim(), optionsJson, request.Force, JobStatus.Queued, DateTimeOffset.UtcNow);
        store.InsertJob(job);
        runner.Wake();
        var response = JobResponse.From(store.GetJob(job.Id)!) with
        {
            Warnings = minutes < warn ? [$"{minutes:0} min of training speech; {warn:0} min or more fine-tunes {engine} far better."] : [],
        };
        return TypedResults.Accepted($"/v1/finetune/jobs/{job.Id}", response);
    }

    public static Ok<JobResponse[]> ListJobs(JobStore store) => TypedResults.Ok(store.ListJobs("finetune").Select(JobResponse.From).ToArray());

    public static Results<Ok<JobResponse>, ProblemHttpResult> GetJob(string id, JobStore store) =>
        store.GetJob(id) is { } job ? TypedResults.Ok(JobResponse.From(job)) : Problems.NotFound($"No job with id '{id}'. GET /v1/finetune/jobs lists them.");

    public static Results<Accepted<JobResponse>, ProblemHttpResult> CancelJob(string id, JobStore store, JobRunner runner)
    {
        if (store.GetJob(id) is not { } job)
        {
            return Problems.NotFound($"No job with id '{id}'. GET /v1/finetune/jobs lists them.");
        }

        return runner.Cancel(id)
            ? TypedResults.Accepted($"/v1/finetune/jobs/{id}", JobResponse.From(store.GetJob(id)!))
            : Problems.Create(StatusCodes.Status409Conflict, $"The job has already ended ({job.Status}); there is nothing to cancel.");
    }

    public static Results<Accepted<JobResponse>, ProblemHttpResult> ResumeJob(string id, JobStore store, JobRunner runner)
    {
        if (store.GetJob(id) is not { } job)
        {
            return Problems.NotFound($"No job with id '{id}'. GET /v1/finetune/jobs lists them.");
        }

        if (!store.Requeue(id))
        {
            return Problems.Create(StatusCodes.Status409Conflict, $"The job is {job.Status}; only an interrupted or failed job can be resumed.");
        }

        if (job.Kind == "prepare" && job.DatasetId is { } dataset)
        {
            store.UpdateDataset(dataset, "preparing", null, null);
        }

        runner.Wake();
        return TypedResults.Accepted($"/v1/finetune/jobs/{id}", JobResponse.From(store.GetJob(id)!));
    }

    /// <summary>The job's progress as server-sent events: everything so far (after Last-Event-ID), then live until it ends.</summary>
    public static Results<ServerSentEventsResult<string>, ProblemHttpResult> JobEventStream(string id, HttpContext http, JobStore store, JobEvents events, CancellationToken ct)
    {
        if (store.GetJob(id) is null)
        {
            return Problems.NotFound($"No job with id '{id}'. GET /v1/finetune/jobs lists them.");
        }

        var after = long.TryParse(http.Request.Headers["Last-Event-ID"].ToString(), out var last) ? last : 0;
        return TypedResults.ServerSentEvents(Items(events.ReadAsync(id, after, () => store.GetJob(id)?.Status, ct), ct));

        static async IAsyncEnumerable<SseItem<string>> Items(IAsyncEnumerable<JsonElement> source, [EnumeratorCancellation] CancellationToken ct)
        {
            await foreach (var e in source.WithCancellation(ct))
            {
                yield return new SseItem<string>(e.GetRawText(), e.GetProperty("type").GetString()) { EventId = e.GetProperty("seq").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture) };
            }
        }
    }

    // -- versions -----------------------------------------------------------------------------

    public static Results<Ok<VoiceVersionsResponse>, ProblemHttpResult> ListVersions(string id, VoiceLibrary voices) =>
        voices.Find(id) is { } voice && voice.Id == id
            ? TypedResults.Ok(VoiceVersionsResponse.From(voice))
            : Problems.NotFound($"No voice with id '{id}'. GET /v1/voices lists them.");

    public static async Task<Results<Ok<VoiceVersionsResponse>, ProblemHttpResult>> ActivateVersion(string id, int number, VoiceLibrary voices, CancellationToken ct)
    {
        if (voices.FolderOf(id) is null)
        {
            return Problems.BadRequest($"'{id}' is not a voice id: ids are lower-case letters, digits and hyphens (see GET /v1/voices).", "id");
        }

        try
        {
            return TypedResults.Ok(VoiceVersionsResponse.From(await voices.ActivateAsync(id, number, ct)));
        }
        catch (VoiceNotFoundException e)
        {
            return Problems.NotFound(e.Message);
        }
    }

    private static string SafeName(string stem)
    {
        var safe = new string(stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray()).Trim('.');
        return safe.Length == 0 ? "recording" : safe[..Math.Min(safe.Length, 80)];
    }

    private static async Task<string> ReadTextAsync(IFormFile file, CancellationToken ct)
    {
        using var reader = new StreamReader(file.OpenReadStream());
        return await reader.ReadToEndAsync(ct);
    }
}
