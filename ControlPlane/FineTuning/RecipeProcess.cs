using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.FineTuning;

/// <summary>Runs one finetune/ command (`python -m finetune …`) as a child process in its own process group.</summary>
/// <remarks>
/// A crash or an out-of-memory kill in training ends the child, never the server. The child is the
/// leader of a new session (setsid), so a cancel signals the whole group — data loaders, ffmpeg and
/// whatever else the recipe started — and nothing outlives the job.
/// </remarks>
public sealed partial class RecipeProcess(IOptions<TimbreOptions> options, ILogger<RecipeProcess> logger)
{
    private static readonly TimeSpan TermGrace = TimeSpan.FromSeconds(10);

    /// <summary>Runs the command to its end; each JSON event line on stdout goes to <paramref name="onEvent"/>, stderr to <paramref name="logPath"/>.</summary>
    public async Task<RecipeOutcome> RunAsync(IReadOnlyList<string> arguments, string logPath, Action<int> onStarted, Action<JsonObject> onEvent, CancellationToken ct)
    {
        var python = options.Value.Python;
        var start = new ProcessStartInfo("setsid")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(logPath)!,
        };
        start.ArgumentList.Add(python.Executable);
        start.ArgumentList.Add("-m");
        start.ArgumentList.Add("finetune");
        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["PYTHONPATH"] = string.Join(':', python.SearchPath());
        start.Environment["PYTHONUNBUFFERED"] = "1";
        // Numeric libraries would start a thread per core; the recipe's --cores pins it instead.
        start.Environment["OMP_NUM_THREADS"] = "1";
        start.Environment["OPENBLAS_NUM_THREADS"] = "1";
        start.Environment["MKL_NUM_THREADS"] = "1";
        // Where ops/install-gpu put the upstream Qwen3 fine-tuning scripts and the 12 Hz tokenizer.
        var tuning = options.Value.FineTuning;
        if (!string.IsNullOrEmpty(tuning.Qwen3Scripts))
        {
            start.Environment["TIMBRE_QWEN3_SCRIPTS"] = tuning.Qwen3Scripts;
        }

        if (!string.IsNullOrEmpty(tuning.Qwen3Tokenizer))
        {
            start.Environment["TIMBRE_QWEN3_TOKENIZER"] = tuning.Qwen3Tokenizer;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("setsid could not start the recipe");
        LogStarted(logger, process.Id, arguments[0]);
        onStarted(process.Id);
        var tail = new Queue<string>();
        string? error = null;
        var stderr = Task.Run(async () =>
        {
            await using var log = new StreamWriter(logPath, append: true);
            while (await process.StandardError.ReadLineAsync(CancellationToken.None) is { } line)
            {
                await log.WriteLineAsync(line);
                lock (tail)
                {
                    tail.Enqueue(line);
                    if (tail.Count > 20)
                    {
                        tail.Dequeue();
                    }
                }
            }
        }, CancellationToken.None);

        using var kill = ct.Register(() => _ = StopGroupAsync(process));
        while (await process.StandardOutput.ReadLineAsync(CancellationToken.None) is { } line)
        {
            if (ParseEvent(line) is not { } evt)
            {
                continue;
            }

            if (evt["type"]?.GetValue<string>() == "error")
            {
                error = evt["message"]?.GetValue<string>();
            }

            onEvent(evt);
        }

        await process.WaitForExitAsync(CancellationToken.None);
        await stderr;
        string[] lastLines;
        lock (tail)
        {
            lastLines = [.. tail];
        }

        return new RecipeOutcome(process.ExitCode, ct.IsCancellationRequested, error, lastLines);
    }

    private static JsonObject? ParseEvent(string line)
    {
        if (!line.StartsWith('{'))
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(line) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>SIGTERM to the group, then SIGKILL if anything is left after the grace.</summary>
    private async Task StopGroupAsync(Process process)
    {
        try
        {
            var group = process.Id;
            Signal("TERM", group);
            using var timeout = new CancellationTokenSource(TermGrace);
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                LogKilled(logger, group);
            }

            // The leader may be gone while its children are not: the group is signalled either way.
            Signal("KILL", group);
        }
        catch (InvalidOperationException)
        {
            // The process had already exited and been reaped.
        }
    }

    /// <summary>At start-up: a recipe left running by a server that was killed (its group leader still a finetune process) is stopped.</summary>
    public void StopLeftover(int pid)
    {
        string commandLine;
        try
        {
            commandLine = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return; // gone
        }

        if (commandLine.Contains("-m finetune", StringComparison.Ordinal))
        {
            Signal("KILL", pid);
            LogLeftover(logger, pid);
        }
    }

    private static void Signal(string signal, int group)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + signal, "--", "-" + group.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        });
        kill?.WaitForExit();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Started recipe process {Pid}: finetune {Command}")]
    private static partial void LogStarted(ILogger logger, int pid, string command);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stopped recipe process group {Group}, left running when the server was killed")]
    private static partial void LogLeftover(ILogger logger, int group);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Recipe process group {Group} ignored SIGTERM; killed")]
    private static partial void LogKilled(ILogger logger, int group);
}

/// <summary>How a recipe process ended: exit code, whether it was cancelled, its error event and its last stderr lines.</summary>
public sealed record RecipeOutcome(int ExitCode, bool Cancelled, string? Error, IReadOnlyList<string> StderrTail)
{
    public bool Succeeded => ExitCode == 0 && !Cancelled;

    /// <summary>What to tell a person: the recipe's own message, else the end of its stderr.</summary>
    public string Describe() =>
        Error ?? (ExitCode == 3 ? "the disk is full" : StderrTail.LastOrDefault(l => l.Trim().Length > 0) is { } last ? $"exit code {ExitCode}: {last}" : $"exit code {ExitCode}");
}
