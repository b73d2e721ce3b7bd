using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Timbre.ControlPlane.Tests;

/// <summary>Fine-tuning across process boundaries: a server killed mid-training, and ops/finetune as a person runs it.</summary>
public sealed class FineTuningProcessTests(FineTuningFixture data) : IClassFixture<FineTuningFixture>, IDisposable
{
    private readonly DirectoryInfo work = Directory.CreateTempSubdirectory("timbre-ft-proc-");

    [Fact]
    public async Task A_job_outlives_a_killed_server_and_resumes_from_its_checkpoint()
    {
        var port = ServerProcess.FreePort();
        string[] settings = ["--Timbre:FineTuning:EvaluationClips", "3"];
        var first = ServerProcess.Start(work.FullName, port, "/usr/bin/python3", out var log, null, settings);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        string job;
        string folder;
        try
        {
            await ServerProcess.WaitReadyAsync(http, first, log);
            var (dataset, prepare) = await FineTuningClient.UploadAsync(http, data.Upload("Phoenix"));
            await FineTuningClient.WaitAsync(http, prepare, "succeeded");
            using var created = await FineTuningClient.StartJobAsync(http, new { dataset, engine = "classic", voice = "Phoenix", options = new { max_iterations = 25, components = 16, tolerance = 0, strength = 0.6 }, force = true });
            job = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            await FineTuningClient.WaitForStageAsync(http, job, "train");
            folder = Path.Combine(work.FullName, "data", ".finetune", "jobs", job);
        }
        finally
        {
            // A crash or an OOM kill: no drain, no signal to the children.
            first.Kill();
            await first.WaitForExitAsync();
            first.Dispose();
        }

        // The recipe is in its own process group, so it outlived the server …
        Assert.Equal(1, FineTuningClient.RecipesUnder(folder));
        using var second = ServerProcess.Start(work.FullName, port, "/usr/bin/python3", out var log2, null, settings);
        try
        {
            await ServerProcess.WaitReadyAsync(http, second, log2);
            // … and the restarted server stopped it and marked the job interrupted, losing nothing.
            Assert.Equal(0, FineTuningClient.RecipesUnder(folder));
            var interrupted = await http.GetFromJsonAsync<JsonElement>($"/v1/finetune/jobs/{job}");
            Assert.Equal("interrupted", interrupted.GetProperty("status").GetString());
            Assert.Contains("resume it", interrupted.GetProperty("error").GetString(), StringComparison.Ordinal);
            var checkpoint = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(folder, "version", "work", "state.json"))).RootElement.GetProperty("iteration").GetInt32();
            Assert.True(checkpoint >= 1);

            using (var resume = await http.PostAsync($"/v1/finetune/jobs/{job}/resume", null))
            {
                Assert.Equal(HttpStatusCode.Accepted, resume.StatusCode);
            }

            var done = await FineTuningClient.WaitAsync(http, job, "succeeded", "failed");
            Assert.True(done.GetProperty("status").GetString() == "succeeded", done.ToString());
            Assert.Equal(2, done.GetProperty("attempts").GetInt32());
            var events = (await File.ReadAllLinesAsync(Path.Combine(folder, "events.jsonl"))).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            Assert.Contains(events, e => e.TryGetProperty("message", out var m) && m.GetString() == $"resumed after iteration {checkpoint}");
            // Training went on from the checkpoint: no iteration before it ran twice.
            var epochs = events.Where(e => e.TryGetProperty("epoch", out _) && e.TryGetProperty("loss", out _)).Select(e => e.GetProperty("epoch").GetInt32()).ToList();
            Assert.Equal(epochs.Distinct().Count(), epochs.Count);
            Assert.Equal(1, done.GetProperty("result").GetProperty("version").GetInt32());
        }
        finally
        {
            second.Kill(entireProcessTree: true);
            await second.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task ops_finetune_takes_a_folder_to_an_active_version_and_Ctrl_C_cancels_its_job()
    {
        using var app = new TimbreApp();
        app.Settings["Timbre:FineTuning:EvaluationClips"] = "3";
        var url = app.BaseAddress.ToString();

        var (code, output) = await RunFineTuneAsync(url, ["--name", "Cli", "--option", "max_iterations=3", "--option", "strength=0.6", "--force", data.Takes]);
        Assert.True(code == 0, output);
        Assert.Contains("2 recordings", output, StringComparison.Ordinal);
        Assert.Contains("Dataset: ", output, StringComparison.Ordinal);
        Assert.Contains("Training", output, StringComparison.Ordinal);
        Assert.Contains("epoch 3/3", output, StringComparison.Ordinal);
        Assert.Contains("Held-out sentences: 3", output, StringComparison.Ordinal);
        Assert.Contains("Voice 'cli' version 1 is active", output, StringComparison.Ordinal);

        // A second run adds a version; Ctrl-C during training cancels the job and exits 130.
        var started = new TaskCompletionSource();
        var run = RunFineTuneAsync(url, ["--name", "Cli", "--option", "max_iterations=500", "--option", "components=24", "--option", "tolerance=0", data.Takes], line =>
        {
            if (line.Contains("epoch ", StringComparison.Ordinal))
            {
                started.TrySetResult();
            }
        });
        await started.Task.WaitAsync(TimeSpan.FromMinutes(3));
        Audio.Run("kill", "-INT", (await Pid.Task).ToString(CultureInfo.InvariantCulture));
        var (cancelled, cancelOutput) = await run;
        Assert.True(cancelled == 130, cancelOutput);
        Assert.Contains("cancelled", cancelOutput, StringComparison.Ordinal);
        using var http = app.CreateClient();
        var jobs = await http.GetFromJsonAsync<JsonElement[]>("/v1/finetune/jobs");
        Assert.Equal("cancelled", jobs![0].GetProperty("status").GetString());
        var versions = await http.GetFromJsonAsync<JsonElement>("/v1/voices/cli/versions");
        Assert.Equal(2, versions.GetProperty("versions").GetArrayLength());

        // Bad input is exit code 2 with the reason, before anything is sent.
        var (bad, badOutput) = await RunFineTuneAsync(url, ["--name", "Cli", "/nonexistent/folder"]);
        Assert.Equal(2, bad);
        Assert.Contains("/nonexistent/folder does not exist", badOutput, StringComparison.Ordinal);
    }

    private TaskCompletionSource<int> Pid { get; set; } = new();

    private async Task<(int Code, string Output)> RunFineTuneAsync(string url, string[] args, Action<string>? onLine = null)
    {
        Pid = new TaskCompletionSource<int>();
        var psi = new ProcessStartInfo(Path.Combine(ServerProcess.RepositoryRoot, "ops", "finetune")) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["TIMBRE_URL"] = url;
        var output = new StringBuilder();
        using var process = new Process { StartInfo = psi };
        void Line(string? text)
        {
            if (text is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(text);
            }

            onLine?.Invoke(text);
        }

        process.OutputDataReceived += (_, e) => Line(e.Data);
        process.ErrorDataReceived += (_, e) => Line(e.Data);
        process.Start();
        Pid.TrySetResult(process.Id);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await process.WaitForExitAsync(timeout.Token);
        process.WaitForExit();
        lock (output)
        {
            return (process.ExitCode, output.ToString());
        }
    }

    public void Dispose() => work.Delete(recursive: true);
}
