using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Timbre.ControlPlane.Tests;

/// <summary>Starts the built ControlPlane as its own process, as ops/run does, for tests that need a fresh interpreter.</summary>
public static class ServerProcess
{
    public static Process Start(string work, int port, string python, out StringBuilder log, IDictionary<string, string>? environment = null, params string[] extra)
    {
        var config = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var dll = Path.Combine(RepositoryRoot, "ControlPlane", "bin", config, "net10.0", "Timbre.ControlPlane.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetDirectoryName(dll)! };
        foreach (var a in new[] { dll, "--urls", $"http://127.0.0.1:{port}", "--Timbre:DataDirectory", Path.Combine(work, "data"), "--Timbre:Python:Executable", python }.Concat(extra))
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[key] = value;
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

    public static string RepositoryRoot
    {
        get
        {
            var root = AppContext.BaseDirectory;
            while (!File.Exists(Path.Combine(root, "ControlPlane.sln")))
            {
                root = Path.GetDirectoryName(root.TrimEnd('/'))!;
            }

            return root;
        }
    }

    public static async Task WaitReadyAsync(HttpClient http, Process server, StringBuilder log)
    {
        for (var i = 0; i < 240; i++)
        {
            if (server.HasExited)
            {
                // The output handlers may still be appending: read the log under their lock.
                server.WaitForExit();
                Assert.Fail($"server exited ({server.ExitCode}): {Text(log)}");
            }

            try
            {
                // Ready, and it is this process that answers: another test's server may hold the port this
                // one was given, in which case this one fails to bind and exits (reported above).
                if ((await http.GetAsync("/ready")).IsSuccessStatusCode && Text(log).Contains($"Now listening on: {http.BaseAddress!.GetLeftPart(UriPartial.Authority)}", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(250);
        }

        Assert.Fail($"server never became ready: {Text(log)}");
    }

    /// <summary>The output so far, read under the lock its writers take.</summary>
    public static string Text(StringBuilder log)
    {
        lock (log)
        {
            return log.ToString();
        }
    }

    private static readonly HashSet<int> Given = [];

    /// <summary>A loopback port free now and not given to another test of this run.</summary>
    public static int FreePort()
    {
        while (true)
        {
            using var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            var port = ((IPEndPoint)l.LocalEndpoint).Port;
            lock (Given)
            {
                if (Given.Add(port))
                {
                    return port;
                }
            }
        }
    }
}
