using System.Diagnostics;
using System.Globalization;
using Timbre.Bench;
using Timbre.PyRuntime;

// ops/bench's client. Rounds of c requests started together are run on each path in turn — the engine
// called directly in Python (the floor, twice: two processes of the same script), Timbre's three streaming
// surfaces and the FastAPI reference — interleaved, in an order that rotates each round, so every path is
// measured in the same minutes: this machine's speed drifts by tens of per cent over a run, more than the
// differences measured. The second floor process is an A/A control: whatever separates it from the first
// is the run's resolution, not anyone's cost. Figures, not pass/fail: the targets are printed beside them.
var options = BenchOptions.Parse(args);
using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(30) }) { Timeout = TimeSpan.FromMinutes(10) };
http.DefaultRequestHeaders.Authorization = new("Bearer", options.Key);
await using var direct = await DirectEngine.StartAsync(options);
await using var control = await DirectEngine.StartAsync(options);

var paths = new BenchPath[]
{
    new(Paths.Direct, false, n => Task.FromResult(new Round(() => direct.RoundAsync(n), () => ValueTask.CompletedTask))),
    new(Paths.Control, false, n => Task.FromResult(new Round(() => control.RoundAsync(n), () => ValueTask.CompletedTask))),
    new(Paths.SignalR, true, async n => Round.Of(await Task.WhenAll(Enumerable.Range(0, n).Select(_ => Client.SignalRAsync(options))))),
    new(Paths.Rest, true, n => Task.FromResult(Round.Of([.. Enumerable.Range(0, n).Select(_ => Client.Rest(http, options, "/v1/speech"))]))),
    new(Paths.OpenAi, true, n => Task.FromResult(Round.Of([.. Enumerable.Range(0, n).Select(_ => Client.Rest(http, options, "/v1/audio/speech"))]))),
    new(Paths.FastApi, false, n => Task.FromResult(Round.Of([.. Enumerable.Range(0, n).Select(_ => Client.FastApi(http, options))]))),
};

// Warm-up: the first requests pay for connection set-up and the voice profile's disk read, and .NET's
// tiered JIT keeps recompiling hot methods for the server's first hundred or so requests (its CPU per
// request fell from 422 to 333-348 ms between requests 6-25 and 76-115). The figures are for a server
// that has been running, as Timbre does: 40 requests per path, at concurrency 4 and then 1.
foreach (var path in paths)
{
    await using (var warm = await path.Open(4))
    {
        for (var i = 0; i < 9; i++)
        {
            await warm.RunAsync();
        }
    }

    await using var single = await path.Open(1);
    for (var i = 0; i < 4; i++)
    {
        await single.RunAsync();
    }
}

// Then until the JIT has settled: a path's own methods reach their final tier only after 60 or more calls
// (tier 0, an instrumented tier, then tier 1, 30 calls apart), so a method called once a request was still
// being recompiled in the measured rounds after 40 warm-ups (650 methods, 2-6 ms of a core at a time). Blocks
// of requests on each of Timbre's paths run until one compiles no more than a handful of methods.
var settled = 0;
long lastBlock = 0;
for (var block = 0; block < 40; block++)
{
    var before = await RuntimeAsync(http, options);
    foreach (var path in paths.Where(p => p.Timbre))
    {
        await using var single = await path.Open(1);
        for (var i = 0; i < 5; i++)
        {
            await single.RunAsync();
        }
    }

    settled += 5;
    lastBlock = (await RuntimeAsync(http, options)).Jit - before.Jit;
    if (lastBlock <= 10)
    {
        break;
    }
}

Console.Error.WriteLine($"bench: warm-up: {settled} more requests on each Timbre path until the JIT settled ({lastBlock} methods compiled over the last {5 * Paths.Timbre.Length})");

// The order of the paths within each round. A request that follows the other processes' requests finds
// the server's caches cold: with the paths in a fixed rotation the path after the floor measured 6-12 ms
// later first audio than the same code two places on, whichever path that was. A Williams design makes
// each path follow every other path equally often over the sequence. That alone does not balance it:
// Timbre's three paths are one process, so half the time a Timbre path follows its own process, warm,
// while the floor always follows another process. Three copies of the floor, interleaved, measured means
// 12 ms apart for the one that never followed itself. So each measured round is primed: one unmeasured
// request on the same path just before it, and every path is measured warm (then the copies agreed
// within 1-4 ms, which the control row shows for each run).
var orders = WilliamsOrders(paths.Length);
var rows = new List<Row>();
var runtime = new List<(int Concurrency, long Jit, long Gen0, long Gen1, long Gen2, double Pause)>();
foreach (var c in options.Concurrency)
{
    // Whole passes through the design, so that it stays balanced. Up to c=16, one pass at least, which
    // at c=16 also puts a p95 on 96 requests a path rather than the 64 of four rounds (that p95 was the
    // floor's noisiest figure: 705-1040 ms between runs). Beyond, what counts is refusals, not a p95.
    var rounds = Math.Max(c <= 16 ? orders.Length : 1, (int)Math.Ceiling(options.Requests / (double)c));
    if (rounds >= orders.Length)
    {
        rounds = (rounds + orders.Length - 1) / orders.Length * orders.Length;
    }
    var results = paths.ToDictionary(p => p.Name, _ => new List<Result>());
    var serverFirst = paths.ToDictionary(p => p.Name, _ => (Sum: 0.0, Count: 0L));
    // CPU seconds spent on each path's requests by the process that serves them, and by this client.
    var cpu = paths.ToDictionary(p => p.Name, _ => (Server: 0.0, Client: 0.0));
    // Connected once per concurrency, as a client that speaks often keeps its connection.
    var open = new Dictionary<string, Round>();
    var primers = new Dictionary<string, Round>();
    foreach (var path in paths)
    {
        open[path.Name] = await path.Open(c);
        primers[path.Name] = c == 1 ? open[path.Name] : await path.Open(1);
    }

    Console.Error.WriteLine($"bench: concurrency {c}, {rounds} rounds of {c} requests on each of {paths.Length} paths");
    var runtimeBefore = await RuntimeAsync(http, options);
    for (var round = 0; round < rounds; round++)
    {
        foreach (var index in orders[round % orders.Length])
        {
            var path = paths[index];
            await primers[path.Name].RunAsync();
            var before = path.Timbre ? await ServerFirstAudioAsync(http, options) : default;
            var server = path.Name == Paths.Direct ? direct.Pid : path.Name == Paths.Control ? control.Pid : path.Name == Paths.FastApi ? options.FastApiPid : options.TimbrePid;
            var (serverBefore, clientBefore) = (CpuSeconds(server), ClientCpuSeconds());
            results[path.Name].AddRange(await open[path.Name].RunAsync());
            var spent = cpu[path.Name];
            cpu[path.Name] = (spent.Server + CpuSeconds(server) - serverBefore, spent.Client + ClientCpuSeconds() - clientBefore);
            if (path.Timbre)
            {
                // Timbre's own measure, from a request's arrival to the engine's first chunk: what the
                // client sees beyond it is transport.
                var after = await ServerFirstAudioAsync(http, options);
                var s = serverFirst[path.Name];
                serverFirst[path.Name] = (s.Sum + after.Sum - before.Sum, s.Count + after.Count - before.Count);
            }
        }
    }

    var runtimeAfter = await RuntimeAsync(http, options);
    runtime.Add((c, runtimeAfter.Jit - runtimeBefore.Jit, runtimeAfter.Gen0 - runtimeBefore.Gen0, runtimeAfter.Gen1 - runtimeBefore.Gen1, runtimeAfter.Gen2 - runtimeBefore.Gen2, runtimeAfter.Pause - runtimeBefore.Pause));
    foreach (var opened in open.Values.Concat(primers.Values).Distinct())
    {
        await opened.DisposeAsync();
    }

    foreach (var path in paths)
    {
        var (sum, count) = serverFirst[path.Name];
        var requests = results[path.Name].Count;
        rows.Add(Row.Of(path.Name, c, results[path.Name], path.Name == Paths.FastApi ? Rss(options.FastApiPid) : path.Timbre ? Rss(options.TimbrePid) : null, count > 0 ? sum / count : null,
            cpu[path.Name].Server / requests, cpu[path.Name].Client / requests));
    }
}

var crossing = await ChunkCrossingAsync(options);

Console.WriteLine();
Console.WriteLine($"Text: \"{options.Text}\" ({options.Text.Length} characters), classic engine, {Environment.ProcessorCount} cores; rounds of c requests started together, paths interleaved.");
Console.WriteLine();
Console.WriteLine("| path | concurrency | first audio p50 | first audio p95 | total p50 | total p95 | underruns | refused (429) | errors | server RSS | engine's first audio in Timbre (mean) | server CPU per request | bench client CPU per request |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (var r in rows)
{
    Console.WriteLine(r.Format());
}

Console.WriteLine();
foreach (var r in runtime)
{
    Console.WriteLine($"Timbre's runtime over the measured rounds at concurrency {r.Concurrency} (its /metrics): {r.Jit} methods compiled by the JIT; {r.Gen0} gen-0, {r.Gen1} gen-1 and {r.Gen2} gen-2 collections, {r.Pause * 1000:0.0} ms paused.");
}

Console.WriteLine($"Chunk crossing (4800 float32 samples, Python -> .NET, {crossing.Count} chunks): median {crossing.Median:0.0} µs, p95 {crossing.P95:0.0} µs; target median ≤ 50 µs → {(crossing.Median <= 50 ? "met" : "NOT met")}");
Row Find(string path, int c) => rows.Single(r => r.Concurrency == c && r.Path == path);
if (options.Concurrency.Contains(1))
{
    var floor = Find(Paths.Direct, 1);
    var hub = Find(Paths.SignalR, 1);
    var aa = Find(Paths.Control, 1);
    Console.WriteLine($"Resolution c=1: the floor's second process against the first (same script; what this run cannot tell apart): p50 {Ms(aa.FirstP50 - floor.FirstP50)}, mean {Ms(aa.FirstMean - floor.FirstMean)}");
    Console.WriteLine($"Target c=1: SignalR first audio p50 ≤ floor + 5 ms: {Ms(hub.FirstP50 - floor.FirstP50)} more → {Met(hub.FirstP50 - floor.FirstP50 <= 0.005)}");
    foreach (var name in Paths.Timbre)
    {
        var row = Find(name, 1);
        if (row.ServerFirst is { } server)
        {
            // The floor's mean, as the server's figure is a mean (from /metrics' sum and count).
            Console.WriteLine($"Target c=1: engine's first audio in Timbre ({name}) ≤ floor + 2 ms (means): {Ms(server - floor.FirstMean)} more → {Met(server - floor.FirstMean <= 0.002)}");
        }
    }

    var fastapi = Find(Paths.FastApi, 1);
    Console.WriteLine($"Target c=1: first audio at least 5x sooner than FastAPI (p50): {fastapi.FirstP50 / hub.FirstP50:0.0}x → {Met(fastapi.FirstP50 / hub.FirstP50 >= 5)}");
}

if (options.Concurrency.Contains(16))
{
    var floor = Find(Paths.Direct, 16);
    var aa = Find(Paths.Control, 16);
    Console.WriteLine($"Resolution c=16: the floor's second process against the first: total p50 {aa.TotalP50 / floor.TotalP50:0.00}×, first audio p95 {aa.FirstP95 / floor.FirstP95:0.00}×");
    foreach (var name in Paths.Timbre)
    {
        var row = Find(name, 16);
        Console.WriteLine($"Target c=16 ({name}): total p50 ≤ 1.10 × floor: {row.TotalP50 / floor.TotalP50:0.000}× → {Met(row.TotalP50 <= 1.10 * floor.TotalP50)}; first audio p95 ≤ 1.3 × floor's: {row.FirstP95 / floor.FirstP95:0.000}× → {Met(row.FirstP95 <= 1.3 * floor.FirstP95)}; underruns {row.Underruns} (floor {floor.Underruns}) → {Met(row.Underruns == 0)}");
    }
}

if (options.Concurrency.Contains(64))
{
    foreach (var name in Paths.Timbre)
    {
        var row = Find(name, 64);
        var refusedSlowest = row.RefusedSlowest is { } t ? $", the slowest refusal in {Ms(t)}" : "";
        Console.WriteLine($"Target c=64 ({name}): every request served or refused with 429 within 100 ms: {row.Served} served, {row.Refused} refused{refusedSlowest}, {row.Errors} failed → {Met(row.Errors == 0 && (row.RefusedSlowest ?? 0) <= 0.1)}");
    }
}

static string Met(bool met) => met ? "met" : "NOT met";

// A Williams square for n treatments: row i is 0, 1, n-1, 2, n-2, ... shifted by i; with n odd its
// mirror rows are added, so that over all rows each ordered pair of neighbours occurs equally often.
static int[][] WilliamsOrders(int n)
{
    var first = new int[n];
    for (int k = 1, low = 1, high = n - 1; k < n; k++)
    {
        first[k] = k % 2 == 1 ? low++ : high--;
    }

    var rows = Enumerable.Range(0, n).Select(i => first.Select(t => (t + i) % n).ToArray()).ToList();
    if (n % 2 == 1)
    {
        rows.AddRange(rows.Select(r => r.Reverse().ToArray()).ToList());
    }

    return [.. rows];
}

// Gates are judged on exact values: to a tenth of a millisecond, 2.04 ms over a 2 ms gate read "2.0 ms more → NOT met".
static string Ms(double seconds) => $"{seconds * 1000:0.00} ms";

static async Task<(double Sum, long Count)> ServerFirstAudioAsync(HttpClient http, BenchOptions o)
{
    // Before the first request the histogram has no series yet: that reads as zero.
    var metrics = await MetricsAsync(http, o);
    return (Series(metrics, "timbre_time_to_first_audio_seconds_sum{engine=\"classic\"}") ?? 0, (long)(Series(metrics, "timbre_time_to_first_audio_seconds_count{engine=\"classic\"}") ?? 0));
}

// Timbre's runtime counters at /metrics: methods compiled by the JIT, collections by generation, GC pauses.
static async Task<(long Jit, long Gen0, long Gen1, long Gen2, double Pause)> RuntimeAsync(HttpClient http, BenchOptions o)
{
    var metrics = await MetricsAsync(http, o);
    double Value(string series) => Series(metrics, series) ?? throw new InvalidOperationException($"Timbre's /metrics has no {series}.");
    return ((long)Value("dotnet_jit_compiled_methods_total"), (long)Value("dotnet_gc_collections_total{generation=\"0\"}"),
        (long)Value("dotnet_gc_collections_total{generation=\"1\"}"), (long)Value("dotnet_gc_collections_total{generation=\"2\"}"), Value("dotnet_gc_pause_seconds_total"));
}

static async Task<string[]> MetricsAsync(HttpClient http, BenchOptions o) =>
    (await http.GetStringAsync(new Uri(new Uri(o.Timbre), "/metrics"))).Split('\n');

// One series' value from Prometheus text ("name{labels} value"), or null when the series is absent.
static double? Series(string[] metrics, string series) =>
    metrics.FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal)) is { } line
        ? double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture)
        : null;

// The copy Timbre makes of every chunk an engine yields, measured as the server makes it: PyRuntime's
// buffer-protocol read of a numpy float32 array, in an interpreter embedded in this process.
static async Task<(int Count, double Median, double P95)> ChunkCrossingAsync(BenchOptions o)
{
    var python = new PythonOptions();
    python.ModulePaths.Add(Path.GetDirectoryName(o.DirectScript)!);
    await using var runtime = await PythonRuntime.StartAsync(python);
    var crossings = new List<double>();
    for (var pass = 0; pass < 2; pass++)
    {
        crossings.Clear();
        await foreach (var _ in runtime.StreamAsync(
            py => py.Call("crossing", "chunks", 2000, 4800),
            (_, item) =>
            {
                var clock = Stopwatch.StartNew();
                var samples = item.AsFloatArray();
                crossings.Add(clock.Elapsed.TotalMicroseconds);
                return samples.Length;
            },
            capacity: 4,
            CancellationToken.None))
        {
        }
    }

    crossings.Sort();
    return (crossings.Count, crossings[crossings.Count / 2], crossings[(int)(crossings.Count * 0.95)]);
}

// utime + stime of a process, its finished threads included (/proc/PID/stat, in clock ticks of 1/100 s).
static double CpuSeconds(int pid)
{
    if (pid <= 0 || !File.Exists($"/proc/{pid}/stat"))
    {
        return 0;
    }

    var stat = File.ReadAllText($"/proc/{pid}/stat");
    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
}

static double ClientCpuSeconds()
{
    using var self = Process.GetCurrentProcess();
    return self.TotalProcessorTime.TotalSeconds;
}

static long? Rss(int pid)
{
    if (pid <= 0 || !File.Exists($"/proc/{pid}/status"))
    {
        return null;
    }

    var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
    return line is null ? null : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
}
