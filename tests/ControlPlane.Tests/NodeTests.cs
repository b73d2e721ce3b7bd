using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// A front node (in this process) with a remote engine of kind timbre on two worker nodes: separate
/// Timbre processes on loopback, with no voice library of their own.
/// </summary>
public sealed partial class NodeTests(FineTuningFixture data) : IClassFixture<FineTuningFixture>, IAsyncLifetime, IDisposable
{
    private const string NodeKey = "node-secret-for-the-tests-0123456789";
    private readonly TimbreApp front = new();
    private readonly DirectoryInfo work = Directory.CreateTempSubdirectory("timbre-nodes-");
    private readonly List<Worker> workers = [];

    private sealed class Worker(string folder, int port)
    {
        public string Folder { get; } = folder;

        public int Port { get; } = port;

        public Process? Process { get; set; }

        public StringBuilder Log { get; set; } = new();

        public HttpClient Http { get; } = new() { BaseAddress = new Uri($"http://127.0.0.1:{port}") };

        public string Samples => Path.Combine(Folder, "data", "cluster", "samples");
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public void Dispose() => front.Dispose();

    public async Task DisposeAsync()
    {
        front.Dispose();
        foreach (var w in workers)
        {
            await StopAsync(w);
            w.Http.Dispose();
        }

        work.Delete(recursive: true);
    }

    private async Task<Worker> StartWorkerAsync(Worker? again = null)
    {
        var worker = again ?? new Worker(Path.Combine(work.FullName, $"worker{workers.Count}"), ServerProcess.FreePort());
        if (again is null)
        {
            Directory.CreateDirectory(worker.Folder);
            workers.Add(worker);
        }

        // No API keys: loopback callers (this test) may read its metrics; the front presents the node key.
        worker.Process = ServerProcess.Start(worker.Folder, worker.Port, "/usr/bin/python3", out var log, null, "--Timbre:Cluster:NodeKey", NodeKey);
        worker.Log = log;
        await ServerProcess.WaitReadyAsync(worker.Http, worker.Process, log);
        return worker;
    }

    private static async Task StopAsync(Worker worker)
    {
        if (worker.Process is { HasExited: false } p)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }

        worker.Process?.Dispose();
        worker.Process = null;
    }

    private async Task FrontOnAsync(params Worker[] on) => await FrontOnAsync(enrol: true, on);

    private async Task FrontOnAsync(bool enrol, params Worker[] on)
    {
        for (var i = 0; i < on.Length; i++)
        {
            front.Settings[$"Timbre:Engine:Remote:workers:Endpoints:{i}"] = $"http://127.0.0.1:{on[i].Port}";
        }

        front.Settings["Timbre:Engine:Remote:workers:Kind"] = "timbre";
        front.Settings["Timbre:Engine:Remote:workers:Model"] = "classic";
        front.Settings["Timbre:Engine:Remote:workers:ApiKey"] = NodeKey;
        front.Settings["Timbre:Engine:Remote:workers:Concurrency"] = "4";
        front.Settings["Timbre:Engine:Remote:workers:BreakSeconds"] = "1";
        if (enrol)
        {
            await front.EnrolAsync("Ada");
        }
    }

    private async Task<(HttpStatusCode Status, byte[] Body, string? Clip)> SpeakAsync(string text, string voice = "ada", string engine = "workers")
    {
        using var client = front.CreateClient();
        using var response = await client.PostAsJsonAsync("/v1/speech", new { text, voice, engine });
        var clip = response.Headers.TryGetValues("Timbre-Clip-Id", out var v) ? v.Single() : null;
        return (response.StatusCode, await response.Content.ReadAsByteArrayAsync(), clip);
    }

    /// <summary>Streams the worker completed, from its own metrics.</summary>
    private static async Task<int> CompletedAsync(Worker worker)
    {
        var metrics = await worker.Http.GetStringAsync("/metrics");
        var m = Completed().Match(metrics);
        return m.Success ? (int)double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    [GeneratedRegex("""timbre_streams_total\{engine="classic",outcome="completed"\} (\S+)""")]
    private static partial Regex Completed();

    [Fact]
    public async Task A_front_streams_workers_speech_marked_sends_each_sample_once_and_spreads_the_load()
    {
        var a = await StartWorkerAsync();
        var b = await StartWorkerAsync();
        await FrontOnAsync(a, b);

        // Three sentences: long enough for the mark's payload (the clip's id) to be read back, as on every path.
        var (status, wav, clip) = await SpeakAsync("The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. It is easy to tell the depth of a well.");
        Assert.True(status == HttpStatusCode.OK, Encoding.UTF8.GetString(wav));
        Assert.True(Wav.Parse(wav).Seconds > 5, $"{Wav.Parse(wav).Seconds} s");

        // Marked on the front with the front's key, and logged there as the remote engine's clip.
        using (var client = front.CreateClient())
        {
            using var form = new MultipartFormDataContent { { new ByteArrayContent(wav), "file", "worker.wav" } };
            var found = await (await client.PostAsync("/v1/provenance/detect", form)).Content.ReadFromJsonAsync<JsonElement>();
            Assert.True(found.GetProperty("detected").GetBoolean(), found.ToString());
            Assert.True(found.GetProperty("clip").ValueKind == JsonValueKind.Object, found.ToString());
            Assert.Equal(clip, found.GetProperty("clip").GetProperty("id").GetString());
            Assert.Equal("workers", found.GetProperty("clip").GetProperty("engine").GetString());
        }

        // Requests started together go to both workers; each worker got the voice's samples once, by content.
        var together = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => SpeakAsync("Glue the sheet to the dark blue background.")));
        Assert.All(together, r => Assert.True(r.Status == HttpStatusCode.OK, Encoding.UTF8.GetString(r.Body)));
        var served = new[] { await CompletedAsync(a), await CompletedAsync(b) };
        Assert.Equal(7, served.Sum());
        Assert.All(served, n => Assert.True(n >= 2, $"served {string.Join(" and ", served)}"));
        var enrolled = Directory.GetFiles(Path.Combine(front.DataDirectory, "ada", "samples"), "*.wav")
            .Select(f => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f)))).ToHashSet();
        foreach (var w in new[] { a, b })
        {
            var held = Directory.GetFiles(w.Samples, "*.wav");
            Assert.All(held, f => Assert.Equal(Path.GetFileNameWithoutExtension(f), Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f)))));
            Assert.Contains(held, f => enrolled.Contains(Path.GetFileNameWithoutExtension(f)));
        }

        // Once a worker holds them, requests name the samples and send none.
        var sent = front.Logs.Lines.Count(l => l.Contains("sent sample", StringComparison.Ordinal));
        Assert.True(sent >= 2, $"{sent} samples sent");
        await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => SpeakAsync("It is easy to tell the depth of a well.")));
        Assert.Equal(sent, front.Logs.Lines.Count(l => l.Contains("sent sample", StringComparison.Ordinal)));

        // The node key opens the node API only, and the node API takes the node key only.
        using (var asNode = new HttpClient { BaseAddress = a.Http.BaseAddress })
        {
            asNode.DefaultRequestHeaders.Authorization = new("Bearer", NodeKey);
            using var voices = await asNode.GetAsync("/v1/voices");
            Assert.Equal(HttpStatusCode.Forbidden, voices.StatusCode);
            Assert.Contains("node API", await voices.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            var sample = Audio.Espeak("A sample whose name is not its hash.");
            using var wrong = await asNode.PutAsync($"/v1/cluster/samples/{new string('a', 64)}", new ByteArrayContent(sample));
            Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
            Assert.Contains("SHA-256", await wrong.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            using var missing = await asNode.PostAsJsonAsync("/v1/cluster/speech", new { text = "Hello.", samples = new[] { new { sha256 = new string('b', 64), role = "sample" } } });
            Assert.Equal(HttpStatusCode.Conflict, missing.StatusCode);
            Assert.Equal(new string('b', 64), (await missing.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("missing")[0].GetString());
        }

        using var anonymous = await a.Http.PostAsJsonAsync("/v1/cluster/speech", new { text = "Hello." });
        Assert.Equal(HttpStatusCode.Forbidden, anonymous.StatusCode);
        front.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task A_worker_killed_mid_stream_fails_that_stream_new_requests_go_to_the_survivor_and_it_serves_again_after_restart()
    {
        var a = await StartWorkerAsync();
        var b = await StartWorkerAsync();
        await FrontOnAsync(a, b);
        Assert.Equal(HttpStatusCode.OK, (await SpeakAsync("Warm both the front and a worker.")).Status);

        // A long stream, read to its first audio; then the worker serving it dies.
        using var client = front.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/speech") { Content = JsonContent.Create(new { text = Audio.LongText(12), voice = "ada", engine = "workers", format = "pcm", stream = true }) };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[4800];
        Assert.True(await body.ReadAsync(buffer) > 0);
        var engines = await client.GetFromJsonAsync<JsonElement[]>("/v1/engines");
        var endpoints = engines!.Single(e => e.GetProperty("name").GetString() == "workers").GetProperty("endpoints").EnumerateArray().ToList();
        var busy = endpoints.FindIndex(e => e.GetProperty("inFlight").GetInt32() == 1);
        Assert.True(busy >= 0, string.Join(", ", endpoints));
        var (dead, survivor) = busy == 0 ? (a, b) : (b, a);
        dead.Process!.Kill();
        await dead.Process.WaitForExitAsync();

        // The stream in flight ends with an error, not with a body that looks complete.
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            while (await body.ReadAsync(buffer) > 0)
            {
            }
        });

        // New requests go to the survivor.
        var before = await CompletedAsync(survivor);
        for (var i = 0; i < 3; i++)
        {
            var (status, wav, _) = await SpeakAsync("The fish twisted and turned on the bent hook.");
            Assert.True(status == HttpStatusCode.OK, Encoding.UTF8.GetString(wav));
        }

        Assert.Equal(before + 3, await CompletedAsync(survivor));

        // Restarted, the worker is tried again once its break is over, and serves.
        await StartWorkerAsync(dead);
        await Task.Delay(1500);
        for (var i = 0; i < 4; i++)
        {
            var (status, wav, _) = await SpeakAsync("Press the pants and sew a button on the vest.");
            Assert.True(status == HttpStatusCode.OK, Encoding.UTF8.GetString(wav));
        }

        Assert.True(await CompletedAsync(dead) >= 1, ServerProcess.Text(dead.Log));
    }

    [Fact]
    public async Task A_worker_that_hangs_before_first_audio_is_given_up_for_another_within_the_timeout()
    {
        // A node that takes connections and requests and never answers, as a worker stuck in its engine does.
        using var hung = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        hung.Start();
        var held = new List<System.Net.Sockets.TcpClient>();
        _ = Task.Run(async () =>
        {
            while (true)
            {
                var connection = await hung.AcceptTcpClientAsync();
                lock (held)
                {
                    held.Add(connection);
                }
            }
        });
        var a = await StartWorkerAsync();
        front.Settings["Timbre:Engine:Remote:workers:Endpoints:0"] = $"http://127.0.0.1:{((IPEndPoint)hung.LocalEndpoint).Port}";
        front.Settings["Timbre:Engine:Remote:workers:Endpoints:1"] = $"http://127.0.0.1:{a.Port}";
        // Long enough for a cold worker's first request (its samples sent, then its first synthesis) on a
        // machine busy with the other test classes: 4 s was not, once in a full run.
        front.Settings["Timbre:Engine:Remote:workers:FirstAudioTimeoutSeconds"] = "10";
        front.Settings["Timbre:Engine:Remote:workers:Kind"] = "timbre";
        front.Settings["Timbre:Engine:Remote:workers:Model"] = "classic";
        front.Settings["Timbre:Engine:Remote:workers:ApiKey"] = NodeKey;
        front.Settings["Timbre:Engine:Remote:workers:Concurrency"] = "4";
        await front.EnrolAsync("Ada");

        // Requests one after another: ties between idle endpoints go round the list, so the hung one is tried.
        for (var i = 0; i < 2; i++)
        {
            var (status, wav, _) = await SpeakAsync("The fish twisted and turned on the bent hook.");
            Assert.True(status == HttpStatusCode.OK, Encoding.UTF8.GetString(wav));
        }

        Assert.Equal(2, await CompletedAsync(a));
        Assert.NotEmpty(held);
        using var client = front.CreateClient();
        var engines = await client.GetFromJsonAsync<JsonElement[]>("/v1/engines");
        var stuck = engines!.Single(e => e.GetProperty("name").GetString() == "workers").GetProperty("endpoints")[0];
        Assert.Contains("no audio within 10 s", stuck.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        lock (held)
        {
            held.ForEach(c => c.Dispose());
        }
    }
}
