using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Timbre.ControlPlane.Observability;

/// <summary>Timbre's own figures, written in the Prometheus text format at /metrics.</summary>
/// <remarks>
/// A handful of series updated with interlocked operations; no library is needed for that, and
/// none that exports Prometheus text is served to this build.
/// </remarks>
public sealed class TimbreMetrics
{
    private static readonly double[] LatencyBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    private static readonly double[] FactorBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4];

    private readonly Family<Histogram> timeToFirstAudio = new(
        "timbre_time_to_first_audio_seconds", "histogram", "From a request's arrival to its first audio leaving the engine.", () => new Histogram(LatencyBuckets));

    private readonly Family<Histogram> realTimeFactor = new(
        "timbre_real_time_factor", "histogram", "Synthesis time divided by the duration of the audio made, per completed stream.", () => new Histogram(FactorBuckets));

    private readonly Family<Counter> rejections = new(
        "timbre_rejections_total", "counter", "Requests refused, by reason.", () => new Counter());

    private readonly Family<Counter> engineErrors = new(
        "timbre_engine_errors_total", "counter", "Engine failures (not bad input), by engine.", () => new Counter());

    private readonly Family<Counter> streams = new(
        "timbre_streams_total", "counter", "Speech streams ended, by engine and outcome (completed, cancelled, failed, timeout).", () => new Counter());

    private readonly List<Func<IEnumerable<Gauge>>> gauges = [];

    public void TimeToFirstAudio(string engine, TimeSpan elapsed) => timeToFirstAudio.Get(Label("engine", engine)).Observe(elapsed.TotalSeconds);

    public void RealTimeFactor(string engine, double factor) => realTimeFactor.Get(Label("engine", engine)).Observe(factor);

    public void Rejected(string reason) => rejections.Get(Label("reason", reason)).Add();

    public void EngineError(string engine) => engineErrors.Get(Label("engine", engine)).Add();

    public void StreamEnded(string engine, string outcome) => streams.Get($"engine=\"{engine}\",outcome=\"{outcome}\"").Add();

    /// <summary>Streams of one engine that ended with <paramref name="outcome"/> so far.</summary>
    public long StreamsEnded(string engine, string outcome) => streams.Get($"engine=\"{engine}\",outcome=\"{outcome}\"").Value;

    /// <summary>Registers gauges read when /metrics is scraped (queue depth, streams in flight).</summary>
    public void AddGauges(Func<IEnumerable<Gauge>> read)
    {
        lock (gauges)
        {
            gauges.Add(read);
        }
    }

    public string Render()
    {
        var text = new StringBuilder();
        List<Gauge> current;
        lock (gauges)
        {
            current = gauges.SelectMany(g => g()).ToList();
        }

        foreach (var family in current.GroupBy(g => g.Name))
        {
            text.Append(CultureInfo.InvariantCulture, $"# HELP {family.Key} {family.First().Help}\n# TYPE {family.Key} gauge\n");
            foreach (var g in family)
            {
                text.Append(CultureInfo.InvariantCulture, $"{family.Key}{{{g.Labels}}} {Number(g.Value)}\n");
            }
        }

        timeToFirstAudio.Write(text);
        realTimeFactor.Write(text);
        rejections.Write(text);
        engineErrors.Write(text);
        streams.Write(text);
        WriteRuntime(text);
        return text.ToString();
    }

    /// <summary>
    /// The .NET runtime's own work beside the engines: on a small machine its JIT and collections take cores
    /// from synthesis. The JIT count still rising under a steady load means the server is not warm yet (the
    /// tiered compiler recompiles hot methods over a server's first hundred or so requests).
    /// </summary>
    private static void WriteRuntime(StringBuilder text)
    {
        text.Append(CultureInfo.InvariantCulture, $"# HELP dotnet_jit_compiled_methods_total Methods the JIT has compiled since the process started, tiered recompilations included.\n# TYPE dotnet_jit_compiled_methods_total counter\ndotnet_jit_compiled_methods_total {System.Runtime.JitInfo.GetCompiledMethodCount()}\n");
        text.Append("# HELP dotnet_gc_collections_total Garbage collections since the process started, by generation (a collection of a generation collects the younger ones too).\n# TYPE dotnet_gc_collections_total counter\n");
        for (var generation = 0; generation <= GC.MaxGeneration; generation++)
        {
            text.Append(CultureInfo.InvariantCulture, $"dotnet_gc_collections_total{{generation=\"{generation}\"}} {GC.CollectionCount(generation)}\n");
        }

        text.Append(CultureInfo.InvariantCulture, $"# HELP dotnet_gc_pause_seconds_total Time the runtime paused managed threads for garbage collection since the process started.\n# TYPE dotnet_gc_pause_seconds_total counter\ndotnet_gc_pause_seconds_total {Number(GC.GetTotalPauseDuration().TotalSeconds)}\n");
    }

    private static string Label(string name, string value) => $"{name}=\"{value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)}\"";

    private static string Number(double v) => double.IsPositiveInfinity(v) ? "+Inf" : v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>One gauge reading.</summary>
    public sealed record Gauge(string Name, string Help, string Labels, double Value);

    private interface ISeries
    {
        void Write(StringBuilder text, string name, string labels);
    }

    private sealed class Family<T>(string name, string type, string help, Func<T> create)
        where T : ISeries
    {
        private readonly ConcurrentDictionary<string, T> series = new(StringComparer.Ordinal);

        public T Get(string labels) => series.GetOrAdd(labels, _ => create());

        public void Write(StringBuilder text)
        {
            text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n");
            foreach (var (labels, s) in series.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                s.Write(text, name, labels);
            }
        }
    }

    private sealed class Counter : ISeries
    {
        private long value;

        public long Value => Interlocked.Read(ref value);

        public void Add() => Interlocked.Increment(ref value);

        public void Write(StringBuilder text, string name, string labels) =>
            text.Append(CultureInfo.InvariantCulture, $"{name}{{{labels}}} {Value}\n");
    }

    private sealed class Histogram(double[] bounds) : ISeries
    {
        private readonly long[] counts = new long[bounds.Length + 1];
        private readonly Lock gate = new();
        private double sum;

        public void Observe(double v)
        {
            var i = Array.FindIndex(bounds, b => v <= b);
            lock (gate)
            {
                counts[i < 0 ? bounds.Length : i]++;
                sum += v;
            }
        }

        public void Write(StringBuilder text, string name, string labels)
        {
            long cumulative = 0;
            long[] snapshot;
            double total;
            lock (gate)
            {
                snapshot = (long[])counts.Clone();
                total = sum;
            }

            for (var i = 0; i <= bounds.Length; i++)
            {
                cumulative += snapshot[i];
                var le = i < bounds.Length ? Number(bounds[i]) : "+Inf";
                text.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}\n");
            }

            text.Append(CultureInfo.InvariantCulture, $"{name}_sum{{{labels}}} {Number(total)}\n{name}_count{{{labels}}} {cumulative}\n");
        }
    }
}
