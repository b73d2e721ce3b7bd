using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;

namespace Timbre.ControlPlane.Tests;

/// <summary>tests/fakes/vllm_omni.py as a process: vLLM-Omni's speech contract on a loopback port.</summary>
public sealed class FakeVllm : IAsyncDisposable
{
    private readonly HttpClient http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private readonly string model;
    private readonly double pace;
    private Process? process;

    private FakeVllm(string model, double pace)
    {
        this.model = model;
        this.pace = pace;
    }

    public int Port { get; private set; }

    public Uri Url => new($"http://127.0.0.1:{Port}");

    /// <summary>Starts a fake serving <paramref name="model"/>, generating <paramref name="pace"/> seconds per second of audio.</summary>
    public static async Task<FakeVllm> StartAsync(string model = "Qwen/Qwen3-TTS-12Hz-0.6B-Base", double pace = 0.05, int port = 0)
    {
        var fake = new FakeVllm(model, pace);
        await fake.StartProcessAsync(port);
        return fake;
    }

    private async Task StartProcessAsync(int port)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(ServerProcess.RepositoryRoot, "tests", "fakes", "vllm_omni.py"), "--model", model, "--pace", pace.ToString(System.Globalization.CultureInfo.InvariantCulture), "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            psi.ArgumentList.Add(a);
        }

        process = Process.Start(psi)!;
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (line?.StartsWith("listening ", StringComparison.Ordinal) != true)
        {
            // Its error output is complete once it has exited.
            process.Kill();
            Assert.Fail($"the fake did not start: {line} {await process.StandardError.ReadToEndAsync()}");
        }

        Port = int.Parse(line!["listening ".Length..], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>ok, hang, fail, sse or cut (tests/fakes/vllm_omni.py).</summary>
    public async Task SetModeAsync(string mode)
    {
        using var response = await http.PostAsJsonAsync(new Uri(Url, "/fake/mode"), new { mode });
        response.EnsureSuccessStatusCode();
    }

    /// <summary>Every speech request received, with its body and how it ended (completed, aborted, refused, failed, cut).</summary>
    public async Task<JsonElement[]> RequestsAsync() =>
        (await http.GetFromJsonAsync<JsonElement[]>(new Uri(Url, "/fake/requests")))!;

    /// <summary>Waits until a request has ended with <paramref name="outcome"/>, and returns the requests.</summary>
    public async Task<JsonElement[]> WaitForOutcomeAsync(string outcome, TimeSpan within)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var requests = await RequestsAsync();
            if (requests.Any(r => r.GetProperty("outcome").GetString() == outcome))
            {
                return requests;
            }

            Assert.True(clock.Elapsed < within, $"no request ended '{outcome}' within {within.TotalSeconds} s: {string.Join("\n", requests)}");
            await Task.Delay(100);
        }
    }

    /// <summary>SIGKILL, as a crashed server dies.</summary>
    public void Kill()
    {
        process?.Kill(entireProcessTree: true);
        process?.WaitForExit();
    }

    /// <summary>Starts again on the same port, with no memory of earlier requests.</summary>
    public Task RestartAsync() => StartProcessAsync(Port);

    public async ValueTask DisposeAsync()
    {
        if (process is { HasExited: false })
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process?.Dispose();
        http.Dispose();
    }
}
