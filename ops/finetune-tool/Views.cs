using System.Globalization;
using System.Text;
using System.Text.Json;
using Spectre.Console;

namespace Timbre.FineTune;

/// <summary>Where a run's progress is shown: live bars on a terminal, plain lines otherwise.</summary>
internal interface IRunView
{
    Task<int> RunAsync(Func<IStageSink, Task<int>> pipeline);

    void Info(string message);

    void Error(string message);

    void Dataset(JsonElement report);

    void Evaluation(JsonElement evaluation);
}

/// <summary>Receives the run's progress: upload bytes and the jobs' events.</summary>
internal interface IStageSink
{
    void Upload(long sent, long total);

    void Event(JsonElement e);
}

/// <summary>What both views say about an event.</summary>
internal static class Describe
{
    public static readonly Dictionary<string, string> Stages = new()
    {
        ["upload"] = "Uploading", ["prepare"] = "Preparing", ["enrol"] = "Enrolling zero-shot", ["align"] = "Aligning",
        ["prosody"] = "Pitch and pace", ["train"] = "Training", ["finish"] = "Finishing", ["strength"] = "Choosing strength",
        ["evaluate"] = "Evaluating", ["deploy"] = "Deploying",
    };

    public static string Label(string stage) => Stages.TryGetValue(stage, out var l) ? l : stage;

    public static string Details(JsonElement e)
    {
        var parts = new List<string>();
        if (e.TryGetProperty("epoch", out var epoch))
        {
            parts.Add(e.TryGetProperty("epochs", out var of) ? $"epoch {epoch}/{of}" : $"epoch {epoch}");
        }
        else if (e.TryGetProperty("step", out var step))
        {
            parts.Add(e.TryGetProperty("steps", out var of) ? $"{step}/{of}" : $"{step}");
        }

        if (e.TryGetProperty("loss", out var loss))
        {
            parts.Add($"loss {loss.GetDouble():0.###}");
        }

        if (e.TryGetProperty("eval_loss", out var evalLoss))
        {
            parts.Add($"eval {evalLoss.GetDouble():0.###}");
        }

        if (e.TryGetProperty("eta_s", out var eta) && eta.GetDouble() > 0)
        {
            parts.Add("ETA " + Time(eta.GetDouble()));
        }

        if (e.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String)
        {
            parts.Add(m.GetString()!);
        }

        return string.Join("  ", parts);
    }

    public static string Time(double seconds) =>
        seconds >= 3600 ? TimeSpan.FromSeconds(seconds).ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture)
        : TimeSpan.FromSeconds(seconds).ToString(@"m\:ss", CultureInfo.InvariantCulture);

    public static string Dataset(JsonElement r)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"Dataset: {r.GetProperty("minutes_kept").GetDouble():0.0} min kept in {r.GetProperty("clips").GetInt32()} clips ({r.GetProperty("minutes_train").GetDouble():0.0} min to train, {r.GetProperty("minutes_eval").GetDouble():0.0} min held out)");
        var rejected = r.GetProperty("rejected").EnumerateObject().Select(p => $"{p.Value.GetInt32()} {p.Name.Replace('_', ' ')}").ToList();
        if (rejected.Count > 0)
        {
            text.Append("; rejected: ").Append(string.Join(", ", rejected));
        }

        foreach (var f in r.GetProperty("files").EnumerateArray().Where(f => f.TryGetProperty("error", out _)))
        {
            text.Append("\n  skipped ").Append(f.GetProperty("error").GetString());
        }

        return text.ToString();
    }

    public static readonly (string Key, string Label)[] Measures =
    [
        ("distance_db", "distance to the speaker (MCD, dB, lower is closer)"),
        ("similarity", "similarity (higher is closer)"),
        ("wer_pct", "word error rate, %"),
        ("f0_distance_cents", "pitch distance, cents"),
        ("pace_distance", "pace distance"),
    ];
}

/// <summary>Spectre.Console bars, one per stage, with the trainer's own ETA.</summary>
internal sealed class LiveView : IRunView
{
    public async Task<int> RunAsync(Func<IStageSink, Task<int>> pipeline) =>
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new SpinnerColumn())
            .StartAsync(ctx => pipeline(new Sink(ctx)));

    public void Info(string message) => AnsiConsole.MarkupLine(Markup.Escape(message));

    public void Error(string message) => AnsiConsole.MarkupLine("[red]" + Markup.Escape(message) + "[/]");

    public void Dataset(JsonElement report) => AnsiConsole.MarkupLine(Markup.Escape(Describe.Dataset(report)));

    public void Evaluation(JsonElement e)
    {
        var table = new Table().Title($"Held-out sentences: {e.GetProperty("clips").GetInt32()} ({e.GetProperty("recogniser").GetString() ?? "no recogniser"})")
            .AddColumn("measure").AddColumn(new TableColumn("zero-shot").RightAligned()).AddColumn(new TableColumn("fine-tuned").RightAligned());
        foreach (var (key, label) in Describe.Measures)
        {
            table.AddRow(label, e.GetProperty("zero_shot").GetProperty(key).ToString(), e.GetProperty("candidate").GetProperty(key).ToString());
        }

        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine(e.GetProperty("better").GetBoolean() ? "[green]The fine-tuned version is closer to the speaker.[/]" : "[yellow]The zero-shot clone is better.[/]");
    }

    private sealed class Sink(ProgressContext ctx) : IStageSink
    {
        private readonly Dictionary<string, ProgressTask> tasks = [];

        public void Upload(long sent, long total)
        {
            var task = Task("upload");
            task.Value = total == 0 ? 100 : 100.0 * sent / total;
            task.Description = $"{Describe.Label("upload"),-20} {sent / 1e6:0.0}/{total / 1e6:0.0} MB";
        }

        /// <summary>Details cut to what leaves the bar room on an 80-column terminal.</summary>
        private static string Fit(string details)
        {
            var room = Math.Max(24, AnsiConsole.Profile.Width - 20 - 1 - 30);
            return details.Length <= room ? details : details[..(room - 1)] + "…";
        }

        public void Event(JsonElement e)
        {
            var type = e.GetProperty("type").GetString();
            var stage = e.TryGetProperty("stage", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "";
            if (type == "warning")
            {
                AnsiConsole.MarkupLine("[yellow]warning: " + Markup.Escape(e.GetProperty("message").GetString() ?? "") + "[/]");
                return;
            }

            if (type == "status")
            {
                var status = e.GetProperty("status").GetString();
                if (status is "succeeded")
                {
                    foreach (var t in tasks.Values)
                    {
                        t.Value = 100;
                        t.StopTask();
                    }
                }
                else if (status != "running" && e.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String)
                {
                    AnsiConsole.MarkupLine($"[red]{Markup.Escape(status ?? "")}: {Markup.Escape(m.GetString()!)}[/]");
                }

                // A stage's bar starts with its first progress event: the runner's stage names come before
                // the trainer's own (align, train, …) and would stand above them.
                return;
            }

            if (stage.Length == 0 || type == "result")
            {
                return;
            }

            var task = Task(stage);
            if (e.TryGetProperty("fraction", out var f))
            {
                task.Value = 100 * f.GetDouble();
            }

            task.Description = $"{Markup.Escape(Describe.Label(stage)),-20} {Markup.Escape(Fit(Describe.Details(e)))}";
        }

        private ProgressTask Task(string stage)
        {
            if (!tasks.TryGetValue(stage, out var task))
            {
                // A new stage means the ones before it are done.
                foreach (var t in tasks.Values.Where(t => !t.IsFinished))
                {
                    t.Value = 100;
                    t.StopTask();
                }

                task = ctx.AddTask(Describe.Label(stage), maxValue: 100);
                tasks[stage] = task;
            }

            return task;
        }
    }
}

/// <summary>Plain lines for pipes and CI logs: every status and warning, progress at most every five seconds a stage.</summary>
internal sealed class PlainView : IRunView
{
    public Task<int> RunAsync(Func<IStageSink, Task<int>> pipeline) => pipeline(new Sink());

    public void Info(string message) => Console.WriteLine(message);

    public void Error(string message) => Console.Error.WriteLine(message);

    public void Dataset(JsonElement report) => Console.WriteLine(Describe.Dataset(report));

    public void Evaluation(JsonElement e)
    {
        Console.WriteLine($"Held-out sentences: {e.GetProperty("clips").GetInt32()} ({e.GetProperty("recogniser").GetString() ?? "no recogniser"})");
        Console.WriteLine($"  {"measure",-52} {"zero-shot",10} {"fine-tuned",11}");
        foreach (var (key, label) in Describe.Measures)
        {
            Console.WriteLine($"  {label,-52} {e.GetProperty("zero_shot").GetProperty(key),10} {e.GetProperty("candidate").GetProperty(key),11}");
        }

        Console.WriteLine(e.GetProperty("better").GetBoolean() ? "The fine-tuned version is closer to the speaker." : "The zero-shot clone is better.");
    }

    private sealed class Sink : IStageSink
    {
        private readonly Dictionary<string, DateTime> shown = [];
        private int lastUploadPercent = -1;

        public void Upload(long sent, long total)
        {
            var percent = total == 0 ? 100 : (int)(100 * sent / total);
            if (percent / 25 != lastUploadPercent / 25)
            {
                lastUploadPercent = percent;
                Console.WriteLine($"upload  {percent,3} %  {sent / 1e6:0.0}/{total / 1e6:0.0} MB");
            }
        }

        public void Event(JsonElement e)
        {
            var type = e.GetProperty("type").GetString();
            var stage = e.TryGetProperty("stage", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "";
            switch (type)
            {
                case "warning":
                    Console.WriteLine($"warning: {e.GetProperty("message").GetString()}");
                    return;
                case "error":
                    Console.Error.WriteLine($"error: {e.GetProperty("message").GetString()}");
                    return;
                case "status":
                    var status = e.GetProperty("status").GetString();
                    var message = e.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? ": " + m.GetString() : "";
                    if (status != "running" || stage.Length > 0)
                    {
                        Console.WriteLine(status == "running" ? $"{Describe.Label(stage)} …" : status == "succeeded" ? "  done" : $"job {status}{message}");
                    }

                    return;
                case "progress":
                    var now = DateTime.UtcNow;
                    var last = e.TryGetProperty("fraction", out var f) && f.GetDouble() >= 1.0;
                    if (!last && shown.TryGetValue(stage, out var when) && now - when < TimeSpan.FromSeconds(5))
                    {
                        return;
                    }

                    shown[stage] = now;
                    var percent = e.TryGetProperty("fraction", out var fr) ? $"{100 * fr.GetDouble(),3:0} %  " : "";
                    Console.WriteLine($"  {Describe.Label(stage),-20} {percent}{Describe.Details(e)}");
                    return;
            }
        }
    }
}
