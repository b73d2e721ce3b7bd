using System.Text.Json;
using Spectre.Console;
using Timbre.FineTune;

// ops/finetune: a folder of recordings → a fine-tuned, evaluated, activated voice version, through a
// running Timbre's REST API. Exit codes: 0 done and active; 1 Timbre unreachable or a fault; 2 bad
// input; 3 the job failed; 4 trained but worse than the zero-shot clone (kept, not active); 130 cancelled.
const string Usage = """
    usage: ops/finetune --name NAME [--engine classic|qwen3|xtts] [--option KEY=VALUE]... [--force] FILES-OR-FOLDERS...

    Uploads the recordings (WAV, MP3, FLAC, OGG, M4A; a recording's transcript is the .txt of the same
    name beside it), prepares them, trains a version of the voice NAME (created when it does not exist),
    evaluates it against the zero-shot clone and activates it when it is better (--force: always).
    TIMBRE_URL (default http://127.0.0.1:5075) and TIMBRE_API_KEY say which Timbre to use.
    """;

Options parsed;
try
{
    parsed = Options.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"finetune: {e.Message}");
    Console.Error.WriteLine(Usage);
    return 2;
}

if (parsed.Help)
{
    Console.WriteLine(Usage);
    return 0;
}

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // The first Ctrl-C cancels the job on the server and waits for it to say so; a second one quits.
    if (!cancel.IsCancellationRequested)
    {
        e.Cancel = true;
        cancel.Cancel();
    }
};

var url = Environment.GetEnvironmentVariable("TIMBRE_URL") is { Length: > 0 } u ? u : "http://127.0.0.1:5075";
using var api = new TimbreApi(new Uri(url.TrimEnd('/') + "/"), Environment.GetEnvironmentVariable("TIMBRE_API_KEY"));
var view = Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive ? (IRunView)new PlainView() : new LiveView();
return await new Run(api, parsed, view).ExecuteAsync(cancel.Token);

/// <summary>The command line.</summary>
internal sealed record Options(string Name, string Engine, bool Force, Dictionary<string, object?> TrainerOptions, IReadOnlyList<string> Paths, bool Help)
{
    private static readonly string[] Engines = ["classic", "qwen3", "xtts"];

    public static Options Parse(string[] args)
    {
        string? name = null;
        var engine = "classic";
        var force = false;
        var options = new Dictionary<string, object?>();
        var paths = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "-h" or "--help":
                    return new Options("", engine, false, options, paths, true);
                case "--name":
                    name = Value();
                    break;
                case "--engine":
                    engine = Value().ToLowerInvariant();
                    if (!Engines.Contains(engine))
                    {
                        throw new ArgumentException($"--engine {engine}: use classic, qwen3 or xtts");
                    }

                    break;
                case "--force":
                    force = true;
                    break;
                case "--option":
                    var pair = Value().Split('=', 2);
                    if (pair.Length != 2 || pair[0].Length == 0)
                    {
                        throw new ArgumentException("--option takes KEY=VALUE, such as --option max_iterations=20");
                    }

                    options[pair[0]] = ParseValue(pair[1]);
                    break;
                case var flag when flag.StartsWith("--", StringComparison.Ordinal):
                    throw new ArgumentException($"unknown option {flag}");
                default:
                    paths.Add(args[i]);
                    break;
            }
        }

        if (string.IsNullOrWhiteSpace(name))
        {
            throw new ArgumentException("--name is required: the voice to create or add a version to");
        }

        if (paths.Count == 0)
        {
            throw new ArgumentException("give the recordings: files, or folders holding them");
        }

        return new Options(name, engine, force, options, paths, false);
    }

    /// <summary>Numbers and true/false as JSON values, anything else as a string.</summary>
    private static object? ParseValue(string text)
    {
        try
        {
            return JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException)
        {
            return text;
        }
    }
}
