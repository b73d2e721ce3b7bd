using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// Two front nodes, separate processes, sharing one data directory (README, "Scaling out"): one voice
/// library, one job queue, events and cancels that reach the other node, and a node's death noticed.
/// </summary>
public sealed class SharedDataTests(FineTuningFixture data) : IClassFixture<FineTuningFixture>, IDisposable
{
    private readonly DirectoryInfo work = Directory.CreateTempSubdirectory("timbre-shared-");
    private readonly List<Process> servers = [];

    [Fact]
    public async Task Two_nodes_on_one_data_directory_share_voices_jobs_events_and_cancels()
    {
        var alpha = await StartAsync("alpha");
        using var a = alpha.Http;

        // A job alpha is running is not interrupted by beta starting beside it.
        var (dataset, prepare) = await FineTuningClient.UploadAsync(a, data.Upload("Phoenix"));
        var beta = await StartAsync("beta");
        using var b = beta.Http;
        var prepared = await FollowAsync(beta.Port, prepare);
        Assert.Equal("succeeded", prepared[^1].GetProperty("status").GetString());
        Assert.Equal(Enumerable.Range(1, prepared.Count).Select(i => (long)i), prepared.Select(e => e.GetProperty("seq").GetInt64()));
        Assert.Equal("alpha", (await a.GetFromJsonAsync<JsonElement>($"/v1/finetune/jobs/{prepare}")).GetProperty("node").GetString());

        // One library: the same name created on both nodes at once is stored once, and either node speaks it.
        var sample = Audio.Espeak("The small pup gnawed a hole in the sock. The fish twisted and turned on the bent hook.");
        var created = await Task.WhenAll(CreateVoiceAsync(a, "Ada", sample), CreateVoiceAsync(b, "Ada", sample));
        Assert.Equal([HttpStatusCode.Created, HttpStatusCode.Conflict], created.Order());
        using (var speech = await b.PostAsJsonAsync("/v1/speech", new { text = "Hello from the other node.", voice = "ada", format = "wav" }))
        {
            Assert.True(speech.StatusCode == HttpStatusCode.OK, await speech.Content.ReadAsStringAsync());
            Assert.True((await speech.Content.ReadAsByteArrayAsync()).Length > 24000);
        }

        // A node killed with SIGKILL mid-job: the survivor marks its job interrupted once the node has not
        // been seen for Timbre:Cluster:NodeTimeoutSeconds, and a reader following it there sees that live.
        var job = await StartLongJobAsync(b, dataset);
        var running = await a.GetFromJsonAsync<JsonElement>($"/v1/finetune/jobs/{job}");
        var (doomed, survivor) = running.GetProperty("node").GetString() == "alpha" ? (alpha, beta) : (beta, alpha);
        var following = FollowAsync(survivor.Port, job);
        doomed.Process.Kill();
        await doomed.Process.WaitForExitAsync();
        var clock = Stopwatch.StartNew();
        var events = await following;
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"noticed after {clock.Elapsed}");
        Assert.Equal("interrupted", events[^1].GetProperty("status").GetString());
        Assert.Contains(events, e => e.TryGetProperty("epoch", out _));
        var interrupted = await survivor.Http.GetFromJsonAsync<JsonElement>($"/v1/finetune/jobs/{job}");
        Assert.Equal("interrupted", interrupted.GetProperty("status").GetString());
        Assert.Contains("its node stopped answering", interrupted.GetProperty("error").GetString(), StringComparison.Ordinal);

        // The killed node's recipe outlived it (its own process group); this machine's test stops it.
        foreach (var pid in FineTuningClient.RecipePids(Path.Combine(work.FullName, "data", ".finetune", "jobs", job)))
        {
            using var recipe = Process.GetProcessById(int.Parse(pid, System.Globalization.CultureInfo.InvariantCulture));
            recipe.Kill(entireProcessTree: true);
        }

        // The node comes back under its name and the job is resumed through it; cancelled through the
        // node that does not run it, its owner stops it, and a reader following it from the start on
        // that node reads on past the earlier interruption to the end.
        var back = await StartAsync(doomed.Name);
        using var c = back.Http;
        using (var resume = await c.PostAsync($"/v1/finetune/jobs/{job}/resume", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, resume.StatusCode);
        }

        await FineTuningClient.WaitAsync(c, job, "running");
        var owner = (await c.GetFromJsonAsync<JsonElement>($"/v1/finetune/jobs/{job}")).GetProperty("node").GetString();
        var other = owner == back.Name ? survivor : back;
        var followed = FollowAsync(other.Port, job);
        using (var cancel = await other.Http.DeleteAsync($"/v1/finetune/jobs/{job}"))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        var all = await followed;
        Assert.Equal("cancelled", all[^1].GetProperty("status").GetString());
        Assert.Contains(all, e => e.TryGetProperty("status", out var st) && st.GetString() == "interrupted");
        Assert.Equal(Enumerable.Range(1, all.Count).Select(i => (long)i), all.Select(e => e.GetProperty("seq").GetInt64()));
        Assert.Equal("cancelled", (await FineTuningClient.WaitAsync(other.Http, job, "cancelled", "failed", "succeeded")).GetProperty("status").GetString());
    }

    private async Task<Node> StartAsync(string name)
    {
        var port = ServerProcess.FreePort();
        var process = ServerProcess.Start(work.FullName, port, "/usr/bin/python3", out var log, null,
            "--Timbre:Cluster:NodeName", name, "--Timbre:Cluster:NodeTimeoutSeconds", "10", "--Timbre:FineTuning:EvaluationClips", "3");
        servers.Add(process);
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        await ServerProcess.WaitReadyAsync(http, process, log);
        return new Node(name, port, process, http, log);
    }

    private static async Task<HttpStatusCode> CreateVoiceAsync(HttpClient http, string name, byte[] wav)
    {
        using var form = new MultipartFormDataContent { { new StringContent(name), "name" }, { new ByteArrayContent(wav), "files", "sample.wav" } };
        using var response = await http.PostAsync("/v1/voices", form);
        return response.StatusCode;
    }

    // Far more iterations than the test waits for: it is cancelled or its node killed long before the end.
    private static async Task<string> StartLongJobAsync(HttpClient http, string dataset)
    {
        using var created = await FineTuningClient.StartJobAsync(http, new { dataset, engine = "classic", voice = "Phoenix", options = new { max_iterations = 100000, components = 16, tolerance = 0, strength = 0.6 }, force = true });
        Assert.True(created.StatusCode == HttpStatusCode.Accepted, await created.Content.ReadAsStringAsync());
        var job = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await FineTuningClient.WaitForStageAsync(http, job, "train");
        return job;
    }

    // The job's events over the jobs hub of the node on that port, from the first until the job ends.
    private static async Task<List<JsonElement>> FollowAsync(int port, string job)
    {
        await using var hub = new HubConnectionBuilder().WithUrl($"http://127.0.0.1:{port}/hubs/jobs").Build();
        await hub.StartAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var events = new List<JsonElement>();
        await foreach (var e in hub.StreamAsync<string>("Events", job, 0L, timeout.Token))
        {
            events.Add(JsonDocument.Parse(e).RootElement.Clone());
        }

        return events;
    }

    public void Dispose()
    {
        foreach (var server in servers)
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
                server.WaitForExit();
            }

            server.Dispose();
        }

        foreach (var pid in FineTuningClient.RecipePids(work.FullName))
        {
            using var recipe = Process.GetProcessById(int.Parse(pid, System.Globalization.CultureInfo.InvariantCulture));
            recipe.Kill(entireProcessTree: true);
        }

        work.Delete(recursive: true);
    }

    private sealed record Node(string Name, int Port, Process Process, HttpClient Http, StringBuilder Log);
}
