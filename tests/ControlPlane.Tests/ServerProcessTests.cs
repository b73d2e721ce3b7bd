using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

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

        var port = FreePort();
        using var server = Start(port, Path.Combine(venv, "bin", "python"), out var log);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            await WaitReadyAsync(http, server, log);
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
        using var server = Start(FreePort(), "/nonexistent/python3", out var log);
        Assert.True(server.WaitForExit(60_000), "the server kept running without Python");
        await Task.Delay(100);
        Assert.NotEqual(0, server.ExitCode);
        Assert.Contains("Timbre:Python:Executable", log.ToString(), StringComparison.Ordinal);
    }

    private Process Start(int port, string python, out StringBuilder log)
    {
        var config = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "ControlPlane.sln")))
        {
            root = Path.GetDirectoryName(root.TrimEnd('/'))!;
        }

        var dll = Path.Combine(root, "ControlPlane", "bin", config, "net10.0", "Timbre.ControlPlane.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetDirectoryName(dll)! };
        foreach (var a in new[] { dll, "--urls", $"http://127.0.0.1:{port}", "--Timbre:DataDirectory", Path.Combine(work.FullName, "data"), "--Timbre:Python:Executable", python })
        {
            psi.ArgumentList.Add(a);
        }

        var output = new StringBuilder();
        var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        log = output;
        return process;
    }

    private static async Task WaitReadyAsync(HttpClient http, Process server, StringBuilder log)
    {
        for (var i = 0; i < 240; i++)
        {
            Assert.False(server.HasExited, $"server exited: {log}");
            try
            {
                if ((await http.GetAsync("/ready")).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(250);
        }

        Assert.Fail($"server never became ready: {log}");
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
