using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;

namespace Timbre.ControlPlane.Tests;

/// <summary>Fine-tuning through the real server: datasets, jobs as child processes, events, versions, bad input.</summary>
public sealed class FineTuningTests(FineTuningFixture data) : IClassFixture<FineTuningFixture>, IDisposable
{
    private readonly TimbreApp app = NewApp();

    // Few iterations and a fixed strength keep a run under a minute; the trainer's own tests cover the rest.
    private static readonly object QuickOptions = new { max_iterations = 3, strength = 0.6 };
    private static readonly int[] NotAnObject = [1];

    private static TimbreApp NewApp()
    {
        var app = new TimbreApp();
        app.Settings["Timbre:FineTuning:EvaluationClips"] = "3";
        return app;
    }

    [Fact]
    public async Task Recordings_become_an_evaluated_voice_version_that_speech_uses()
    {
        using var http = app.CreateClient();
        var (dataset, prepare) = await FineTuningClient.UploadAsync(http, data.Upload("Graham"));
        var prepared = await FineTuningClient.WaitAsync(http, prepare, "succeeded", "failed");
        Assert.Equal("succeeded", prepared.GetProperty("status").GetString());
        var report = (await http.GetFromJsonAsync<JsonElement>($"/v1/datasets/{dataset}")).GetProperty("report");
        Assert.True(report.GetProperty("minutes_train").GetDouble() > 2.0);
        Assert.Equal(report.GetProperty("clips").GetInt32(), report.GetProperty("transcripts").GetProperty("transcript").GetInt32());

        using var created = await FineTuningClient.StartJobAsync(http, new { dataset, engine = "classic", voice = "Graham", options = QuickOptions, force = true });
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var job = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        // The SSE route streams every event, live, to the end.
        var sse = await ReadSseAsync(http, $"/v1/finetune/jobs/{job}/events");
        var epochs = sse.Where(e => e.GetProperty("stage").ValueKind == JsonValueKind.String && e.GetProperty("stage").GetString() == "train" && e.TryGetProperty("loss", out _)).ToList();
        Assert.Equal([1, 2, 3], epochs.Select(e => e.GetProperty("epoch").GetInt32()));
        Assert.All(epochs, e => Assert.True(e.TryGetProperty("eval_loss", out _) && e.TryGetProperty("eta_s", out _)));
        Assert.Contains(sse, e => e.GetProperty("stage").ValueKind == JsonValueKind.String && e.GetProperty("stage").GetString() == "evaluate" && e.TryGetProperty("step", out _));
        Assert.Equal("succeeded", sse[^1].GetProperty("status").GetString());
        Assert.Equal(Enumerable.Range(1, sse.Count).Select(i => (long)i), sse.Select(e => e.GetProperty("seq").GetInt64()));

        // The hub streams the same events; Last-Event-ID resumes after one.
        await using (var hub = new HubConnectionBuilder().WithUrl(new Uri(app.BaseAddress, "/hubs/jobs")).Build())
        {
            await hub.StartAsync();
            var viaHub = new List<long>();
            await foreach (var e in hub.StreamAsync<string>("Events", job, 0L))
            {
                viaHub.Add(JsonDocument.Parse(e).RootElement.GetProperty("seq").GetInt64());
            }

            Assert.Equal(sse.Select(e => e.GetProperty("seq").GetInt64()), viaHub);
        }

        var resumed = await ReadSseAsync(http, $"/v1/finetune/jobs/{job}/events", lastEventId: sse.Count - 2);
        Assert.Equal([sse.Count - 1L, sse.Count], resumed.Select(e => e.GetProperty("seq").GetInt64()));

        // The version is in the library, evaluated against zero-shot, active.
        var done = await http.GetFromJsonAsync<JsonElement>($"/v1/finetune/jobs/{job}");
        var result = done.GetProperty("result");
        Assert.Equal("graham", result.GetProperty("voice").GetString());
        Assert.Equal(1, result.GetProperty("version").GetInt32());
        Assert.True(result.GetProperty("activated").GetBoolean());
        var evaluation = result.GetProperty("evaluation");
        Assert.True(evaluation.GetProperty("candidate").GetProperty("distance_db").GetDouble() < evaluation.GetProperty("zero_shot").GetProperty("distance_db").GetDouble());
        Assert.False(Directory.Exists(Path.Combine(app.DataDirectory, ".finetune", "jobs", job, "version", "work")));
        var versions = await http.GetFromJsonAsync<JsonElement>("/v1/voices/graham/versions");
        Assert.Equal(1, versions.GetProperty("active").GetInt32());
        Assert.Equal(["zero-shot", "classic"], versions.GetProperty("versions").EnumerateArray().Select(v => v.GetProperty("engine").GetString()));

        // Speech uses the active version; activating 0 rolls back to the zero-shot clone.
        var tuned = await SpeakAsync(http);
        using (var rollback = await http.PostAsync("/v1/voices/graham/versions/0/activate", null))
        {
            Assert.Equal(HttpStatusCode.OK, rollback.StatusCode);
        }

        var zeroShot = await SpeakAsync(http);
        Assert.NotEqual(Convert.ToHexString(tuned), Convert.ToHexString(zeroShot));
        Assert.True(Wav.Parse(tuned).Seconds > 1.0 && Wav.Parse(zeroShot).Seconds > 1.0);
        app.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task Cancelling_a_running_job_stops_its_processes_and_keeps_nothing_of_it()
    {
        using var http = app.CreateClient();
        var (dataset, prepare) = await FineTuningClient.UploadAsync(http, data.Upload("Cancel"));
        await FineTuningClient.WaitAsync(http, prepare, "succeeded");
        using var created = await FineTuningClient.StartJobAsync(http, new { dataset, engine = "classic", voice = "Cancel", options = new { max_iterations = 500, components = 24, tolerance = 0 } });
        var job = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await FineTuningClient.WaitForStageAsync(http, job, "train");
        var folder = Path.Combine(app.DataDirectory, ".finetune", "jobs", job);
        var pid = Assert.Single(FineTuningClient.RecipePids(folder));
        // A classic job trains on one core at lower priority, so speech keeps the rest of the machine.
        var status = await File.ReadAllLinesAsync($"/proc/{pid}/status");
        var cpus = status.Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal)).Split(':')[1].Trim();
        Assert.Matches(@"^\d+$", cpus);
        var nice = (await File.ReadAllTextAsync($"/proc/{pid}/stat")).Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[16];
        Assert.Equal("10", nice);

        using (var cancel = await http.DeleteAsync($"/v1/finetune/jobs/{job}"))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        var ended = await FineTuningClient.WaitAsync(http, job, "cancelled", "failed", "succeeded");
        Assert.Equal("cancelled", ended.GetProperty("status").GetString());
        Assert.Equal(0, FineTuningClient.RecipesUnder(folder));
        Assert.False(Directory.Exists(Path.Combine(folder, "version")));
        // The voice keeps only its zero-shot clone.
        var versions = await http.GetFromJsonAsync<JsonElement>("/v1/voices/cancel/versions");
        Assert.Single(versions.GetProperty("versions").EnumerateArray());

        // An ended job cannot be cancelled again; the dataset is free to delete now.
        using (var again = await http.DeleteAsync($"/v1/finetune/jobs/{job}"))
        {
            await AssertProblemAsync(again, HttpStatusCode.Conflict, "already ended");
        }

        using (var delete = await http.DeleteAsync($"/v1/datasets/{dataset}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        }

        Assert.False(Directory.Exists(Path.Combine(app.DataDirectory, ".finetune", "datasets", dataset)));
        app.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task Bad_input_gets_problem_details_that_say_what_to_change_and_stores_nothing()
    {
        using var http = app.CreateClient();
        using (var plain = await http.PostAsync("/v1/datasets", new StringContent("hello")))
        {
            await AssertProblemAsync(plain, HttpStatusCode.BadRequest, "multipart/form-data");
        }

        await AssertUploadRefusedAsync(http, [("notes.doc", "x"u8.ToArray())], "unsupported file type");
        await AssertUploadRefusedAsync(http, [("a.txt", "words"u8.ToArray())], "Attach at least one recording");
        await AssertUploadRefusedAsync(http, [("a.wav", Audio.Espeak("Hello.")), ("b.txt", "words"u8.ToArray())], "b.txt names no recording");
        await AssertUploadRefusedAsync(http, [("a.wav", Audio.Espeak("Hello.")), ("A.mp3", Audio.Espeak("Hello."))], "Two recordings are named");
        Assert.Empty(await http.GetFromJsonAsync<JsonElement[]>("/v1/datasets") ?? []);

        // A dataset with a broken file: the file is reported, the rest is prepared; too little speech
        // for the classic trainer is refused with the figures.
        using var form = data.Upload("FewTakes", data.FewTakes);
        form.Add(new ByteArrayContent("RIFF0000WAVEjunk"u8.ToArray()), "files", "broken.wav");
        var (dataset, prepare) = await FineTuningClient.UploadAsync(http, form);
        using (var early = await FineTuningClient.StartJobAsync(http, new { dataset, engine = "classic", voice = "FewTakes" }))
        {
            // Still being prepared (or just prepared, on a fast machine: then it is the minimum that refuses it).
            Assert.True(early.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.BadRequest, await early.Content.ReadAsStringAsync());
        }

        await FineTuningClient.WaitAsync(http, prepare, "succeeded");
        var report = (await http.GetFromJsonAsync<JsonElement>($"/v1/datasets/{dataset}")).GetProperty("report");
        var files = report.GetProperty("files").EnumerateArray().ToList();
        Assert.Contains(files, f => f.GetProperty("file").GetString()!.EndsWith("broken.wav", StringComparison.Ordinal) && f.TryGetProperty("error", out _));
        Assert.Contains(files, f => f.GetProperty("file").GetString()!.EndsWith("short.wav", StringComparison.Ordinal) && !f.TryGetProperty("error", out _));
        await AssertJobRefusedAsync(http, new { dataset, engine = "classic", voice = "FewTakes" }, HttpStatusCode.BadRequest, "needs at least 2 min", "dataset");

        await AssertJobRefusedAsync(http, new { engine = "classic", voice = "x" }, HttpStatusCode.BadRequest, "dataset is required", "dataset");
        await AssertJobRefusedAsync(http, new { dataset = "ds-nothing", engine = "classic", voice = "x" }, HttpStatusCode.BadRequest, "No dataset with id 'ds-nothing'", "dataset");
        await AssertJobRefusedAsync(http, new { dataset, engine = "tacotron", voice = "x" }, HttpStatusCode.BadRequest, "use classic, qwen3, xtts", "engine");
        await AssertJobRefusedAsync(http, new { dataset, engine = "classic" }, HttpStatusCode.BadRequest, "voice is required", "voice");
        await AssertJobRefusedAsync(http, new { dataset, engine = "classic", voice = "x", options = NotAnObject }, HttpStatusCode.BadRequest, "options must be a JSON object", "options");
        using (var missing = await http.GetAsync("/v1/finetune/jobs/job-nothing"))
        {
            await AssertProblemAsync(missing, HttpStatusCode.NotFound, "No job with id");
        }

        using (var events = await http.GetAsync("/v1/finetune/jobs/job-nothing/events"))
        {
            await AssertProblemAsync(events, HttpStatusCode.NotFound, "No job with id");
        }

        using (var resume = await http.PostAsync($"/v1/finetune/jobs/{prepare}/resume", null))
        {
            await AssertProblemAsync(resume, HttpStatusCode.Conflict, "only an interrupted or failed job");
        }

        await app.EnrolAsync("Ada");
        using (var activate = await http.PostAsync("/v1/voices/ada/versions/3/activate", null))
        {
            await AssertProblemAsync(activate, HttpStatusCode.NotFound, "has no version 3");
        }

        app.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task An_upload_that_would_fill_the_disk_is_refused_with_507_and_stores_nothing()
    {
        app.Settings["Timbre:FineTuning:MinFreeBytes"] = (long.MaxValue / 2).ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var http = app.CreateClient();
        using var response = await http.PostAsync("/v1/datasets", data.Upload("Full"));
        await AssertProblemAsync(response, HttpStatusCode.InsufficientStorage, "free space");
        Assert.Empty(await http.GetFromJsonAsync<JsonElement[]>("/v1/datasets") ?? []);
        Assert.False(Directory.Exists(Path.Combine(app.DataDirectory, ".finetune", "datasets")) && Directory.EnumerateFileSystemEntries(Path.Combine(app.DataDirectory, ".finetune", "datasets")).Any());
    }

    [Fact]
    public async Task A_dataset_in_use_cannot_be_deleted_and_GPU_engines_are_refused_where_they_cannot_run()
    {
        using var http = app.CreateClient();
        var (dataset, prepare) = await FineTuningClient.UploadAsync(http, data.Upload("Busy"));
        await FineTuningClient.WaitAsync(http, prepare, "succeeded");
        await AssertJobRefusedAsync(http, new { dataset, engine = "qwen3", voice = "Busy" }, HttpStatusCode.BadRequest, "needs at least 10 min", "dataset");
        using var created = await FineTuningClient.StartJobAsync(http, new { dataset, engine = "classic", voice = "Busy", options = new { max_iterations = 500, components = 24, tolerance = 0 } });
        var job = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        using (var delete = await http.DeleteAsync($"/v1/datasets/{dataset}"))
        {
            await AssertProblemAsync(delete, HttpStatusCode.Conflict, job);
        }

        Assert.True(Directory.Exists(Path.Combine(app.DataDirectory, ".finetune", "datasets", dataset, "prepared")));
        using (var cancel = await http.DeleteAsync($"/v1/finetune/jobs/{job}"))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        await FineTuningClient.WaitAsync(http, job, "cancelled");
    }

    private static async Task<byte[]> SpeakAsync(HttpClient http)
    {
        using var response = await http.PostAsJsonAsync("/v1/speech", new { text = "The judge measured the empty bucket before dawn.", voice = "graham", format = "wav" });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsByteArrayAsync();
    }

    private static async Task<List<JsonElement>> ReadSseAsync(HttpClient http, string path, long lastEventId = 0)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (lastEventId > 0)
        {
            request.Headers.Add("Last-Event-ID", lastEventId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<JsonElement>();
        await foreach (var item in System.Net.ServerSentEvents.SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            var e = JsonDocument.Parse(item.Data).RootElement.Clone();
            Assert.Equal(e.GetProperty("type").GetString(), item.EventType);
            Assert.Equal(e.GetProperty("seq").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture), item.EventId);
            events.Add(e);
        }

        return events;
    }

    private static async Task AssertUploadRefusedAsync(HttpClient http, (string Name, byte[] Bytes)[] files, string detail)
    {
        using var form = new MultipartFormDataContent();
        foreach (var (name, bytes) in files)
        {
            form.Add(new ByteArrayContent(bytes), "files", name);
        }

        using var response = await http.PostAsync("/v1/datasets", form);
        await AssertProblemAsync(response, HttpStatusCode.BadRequest, detail);
    }

    private static async Task AssertJobRefusedAsync(HttpClient http, object request, HttpStatusCode status, string detail, string field)
    {
        using var response = await FineTuningClient.StartJobAsync(http, request);
        var problem = await AssertProblemAsync(response, status, detail);
        Assert.Equal(field, problem.GetProperty("field").GetString());
    }

    private static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string detail)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(body).RootElement.Clone();
        Assert.Contains(detail, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        return problem;
    }

    public void Dispose() => app.Dispose();
}
