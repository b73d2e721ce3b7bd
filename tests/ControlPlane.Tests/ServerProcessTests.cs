using System.Net;

namespace Timbre.ControlPlane.Tests;

/// <summary>The built server as its own process on Kestrel loopback, as ops/run starts it.</summary>
public sealed class ServerProcessTests : IDisposable
{
    private readonly DirectoryInfo work = Directory.CreateTempSubdirectory("timbre-proc-");

    public void Dispose() => work.Delete(recursive: true);

    [Fact]
    public async Task A_venv_interpreter_is_embedded_with_its_site_packages_and_pth_files()
    {
        var venv = Path.Combine(work.FullName, "venv");
        // System site-packages give the venv numpy and scipy from Debian, as ops/install-gpu's venv will.
        Audio.Run("/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip", venv);
        var extra = Path.Combine(work.FullName, "extra");
        Directory.CreateDirectory(extra);
        var sitePackages = Directory.GetDirectories(Path.Combine(venv, "lib"), "python3*").Single() + "/site-packages";
        await File.WriteAllTextAsync(Path.Combine(sitePackages, "timbre_test.pth"), extra + "\n");

        var port = ServerProcess.FreePort();
        using var server = ServerProcess.Start(work.FullName, port, Path.Combine(venv, "bin", "python"), out var log);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            await ServerProcess.WaitReadyAsync(http, server, log);
            var text = log.ToString();
            Assert.Contains($"sys.prefix={venv}", text, StringComparison.Ordinal);
            Assert.Contains(extra, text, StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_missing_interpreter_stops_start_up_with_what_to_install()
    {
        using var server = ServerProcess.Start(work.FullName, ServerProcess.FreePort(), "/nonexistent/python3", out var log);
        Assert.True(server.WaitForExit(60_000), "the server kept running without Python");
        await Task.Delay(100);
        Assert.NotEqual(0, server.ExitCode);
        Assert.Contains("Timbre:Python:Executable", log.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SIGTERM_drains_streams_in_flight_refuses_new_work_and_exits_cleanly()
    {
        var port = ServerProcess.FreePort();
        using var server = ServerProcess.Start(work.FullName, port, "/usr/bin/python3", out var log, null, "--Timbre:Speech:DrainTimeoutSeconds", "120");
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            await ServerProcess.WaitReadyAsync(http, server, log);
            using var form = new MultipartFormDataContent { { new StringContent("Ada"), "name" }, { new ByteArrayContent(Audio.Espeak(Audio.Reference)), "files", "ref.wav" } };
            Assert.Equal(HttpStatusCode.Created, (await http.PostAsync("/v1/voices", form)).StatusCode);

            // A long stream is under way, its first audio already received …
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/speech") { Content = System.Net.Http.Json.JsonContent.Create(new { text = Audio.LongText(30), voice = "ada", stream = true, format = "pcm" }) };
            using var inFlight = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var body = await inFlight.Content.ReadAsStreamAsync();
            var received = new MemoryStream();
            var buffer = new byte[8192];
            received.Write(buffer, 0, await body.ReadAsync(buffer));

            // … when the service manager stops Timbre.
            Audio.Run("kill", "-TERM", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            for (var i = 0; i < 200 && (await http.GetAsync("/ready")).StatusCode != HttpStatusCode.ServiceUnavailable; i++)
            {
                await Task.Delay(25);
            }

            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("/ready")).StatusCode);
            using var refused = await http.PostAsync("/v1/speech", System.Net.Http.Json.JsonContent.Create(new { text = "Too late.", voice = "ada" }));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);

            // The stream in flight still runs to its end: thirty sentences are well over a minute of audio.
            await body.CopyToAsync(received);
            Assert.True(received.Length / 2 / 24000.0 > 60, $"the drained stream was cut short at {received.Length / 2 / 24000.0:0.0} s");
            Assert.True(server.WaitForExit(30_000), "the server did not exit after draining");
            Assert.Equal(0, server.ExitCode);
            Assert.Contains("Draining: 1 speech streams in flight", log.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
            }
        }
    }
}
