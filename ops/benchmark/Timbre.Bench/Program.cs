using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Timbre.Bench;
using Timbre.ControlPlane.Speech;
using Timbre.PyRuntime;

// ops/bench's client. Rounds of c requests started together are run on each path in turn — the engine
// called directly in Python (the floor), Timbre's three streaming surfaces and the FastAPI reference —
// interleaved, in an order that rotates each round, so every path is measured in the same minutes: this
// machine's speed drifts by tens of per cent over a run, more than the differences measured.
// Figures, not pass/fail: the targets are printed beside them.
var options = BenchOptions.Parse(args);
using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(30) }) { Timeout = TimeSpan.FromMinutes(10) };
http.DefaultRequestHeaders.Authorization = new("Bearer", options.Key);
await using var direct = await DirectEngine.StartAsync(options);

var paths = new BenchPath[]
{
    new(Paths.Direct, false, n => Task.FromResult(direct.Clients(n))),
    new(Paths.SignalR, true, async n => [.. await Task.WhenAll(Enumerable.Range(0, n).Select(_ => Client.SignalRAsync(options)))]),
    new(Paths.Rest, true, n => Task.FromResult(Enumerable.Range(0, n).Select(_ => Client.Rest(http, options, "/v1/speech")).ToList())),
    new(Paths.OpenAi, true, n => Task.FromResult(Enumerable.Range(0, n).Select(_ => Client.Rest(http, options, "/v1/audio/speech")).ToList())),
    new(Paths.FastApi, false, n => Task.FromResult(Enumerable.Range(0, n).Select(_ => Client.FastApi(http, options)).ToList())),
};

// Warm-up: the first requests pay for JIT, connection set-up and the voice profile's disk read.
foreach (var path in paths)
{
    foreach (var client in await path.Connect(1))
    {
        await using (client)
        {
            for (var i = 0; i < 3; i++)
            {
                await client.SpeakAsync();
            }
        }
    }
}

var rows = new List<Row>();
foreach (var c in options.Concurrency)
{
    var rounds = Math.Max(1, (int)Math.Ceiling(options.Requests / (double)c));
    var results = paths.ToDictionary(p => p.Name, _ => new List<Result>());
    var serverFirst = paths.ToDictionary(p => p.Name, _ => (Sum: 0.0, Count: 0L));
    // Connected once per concurrency, as a client that speaks often keeps its connection.
    var clients = new Dictionary<string, List<Client>>();
    foreach (var path in paths)
    {
        clients[path.Name] = await path.Connect(c);
    }

    Console.Error.WriteLine($"bench: concurrency {c}, {rounds} rounds of {c} requests on each of {paths.Length} paths");
    for (var round = 0; round < rounds; round++)
    {
        for (var k = 0; k < paths.Length; k++)
        {
            var path = paths[(round + k) % paths.Length];
            var before = path.Timbre ? await ServerFirstAudioAsync(http, options) : default;
            results[path.Name].AddRange(await Task.WhenAll(clients[path.Name].Select(client => client.SpeakAsync())));
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

    foreach (var client in clients.Values.SelectMany(list => list))
    {
        await client.DisposeAsync();
    }

    foreach (var path in paths)
    {
        var (sum, count) = serverFirst[path.Name];
        rows.Add(Row.Of(path.Name, c, results[path.Name], path.Name == Paths.FastApi ? Rss(options.FastApiPid) : path.Timbre ? Rss(options.TimbrePid) : null, count > 0 ? sum / count : null));
    }
}

var crossing = await ChunkCrossingAsync(options);

Console.WriteLine();
Console.WriteLine($"Text: \"{options.Text}\" ({options.Text.Length} characters), classic engine, {Environment.ProcessorCount} cores; rounds of c requests started together, paths interleaved.");
Console.WriteLine();
Console.WriteLine("| path | concurrency | first audio p50 | first audio p95 | total p50 | total p95 | underruns | refused (429) | errors | server RSS | engine's first audio in Timbre (mean) |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (var r in rows)
{
    Console.WriteLine(r.Format());
}

Console.WriteLine();
Console.WriteLine($"Chunk crossing (4800 float32 samples, Python -> .NET, {crossing.Count} chunks): median {crossing.Median:0.0} µs, p95 {crossing.P95:0.0} µs; target median ≤ 50 µs → {(crossing.Median <= 50 ? "met" : "NOT met")}");
Row Find(string path, int c) => rows.Single(r => r.Concurrency == c && r.Path == path);
if (options.Concurrency.Contains(1))
{
    var floor = Find(Paths.Direct, 1);
    var hub = Find(Paths.SignalR, 1);
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
    foreach (var name in Paths.Timbre)
    {
        var row = Find(name, 16);
        Console.WriteLine($"Target c=16 ({name}): total p50 ≤ 1.10 × floor: {row.TotalP50 / floor.TotalP50:0.00}× → {Met(row.TotalP50 <= 1.10 * floor.TotalP50)}; first audio p95 ≤ 1.3 × floor's: {row.FirstP95 / floor.FirstP95:0.00}× → {Met(row.FirstP95 <= 1.3 * floor.FirstP95)}; underruns {row.Underruns} (floor {floor.Underruns}) → {Met(row.Underruns == 0)}");
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

static string Ms(double seconds) => $"{seconds * 1000:0.0} ms";

static async Task<(double Sum, long Count)> ServerFirstAudioAsync(HttpClient http, BenchOptions o)
{
    var text = await http.GetStringAsync(new Uri(new Uri(o.Timbre), "/metrics"));
    double Value(string name) => text.Split('\n')
        .Where(l => l.StartsWith(name + "{engine=\"classic\"}", StringComparison.Ordinal))
        .Select(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture))
        .FirstOrDefault();
    return (Value("timbre_time_to_first_audio_seconds_sum"), (long)Value("timbre_time_to_first_audio_seconds_count"));
}

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

static long? Rss(int pid)
{
    if (pid <= 0 || !File.Exists($"/proc/{pid}/status"))
    {
        return null;
    }

    var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
    return line is null ? null : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
}

namespace Timbre.Bench
{
    internal static class Paths
    {
        public const string Direct = "Python engine, direct (floor)";
        public const string SignalR = "SignalR (MessagePack)";
        public const string Rest = "REST /v1/speech, chunked";
        public const string OpenAi = "OpenAI /v1/audio/speech, pcm";
        public const string FastApi = "FastAPI reference (base64 JSON)";
        public static readonly string[] Timbre = [SignalR, Rest, OpenAi];
    }

    internal sealed record BenchPath(string Name, bool Timbre, Func<int, Task<List<Client>>> Connect);

    internal sealed record BenchOptions(string Timbre, string Key, string FastApi, string Voice, string Text, string DirectScript, string VoiceDir, string Sample, int TimbrePid, int FastApiPid, int[] Concurrency, int Requests)
    {
        public static BenchOptions Parse(string[] args)
        {
            var map = new Dictionary<string, string>();
            for (var i = 0; i + 1 < args.Length; i += 2)
            {
                map[args[i].TrimStart('-')] = args[i + 1];
            }

            return new BenchOptions(
                map["timbre"], map["key"], map["fastapi"], map["voice"], map["text"], map["direct"], map["voice-dir"], map["sample"],
                int.Parse(map.GetValueOrDefault("timbre-pid", "0"), CultureInfo.InvariantCulture),
                int.Parse(map.GetValueOrDefault("fastapi-pid", "0"), CultureInfo.InvariantCulture),
                map.GetValueOrDefault("concurrency", "1,4,16,64").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(),
                int.Parse(map.GetValueOrDefault("requests", "40"), CultureInfo.InvariantCulture));
        }
    }

    /// <summary>One request's figures: seconds to first audio and to the end, playback gaps, and how it ended.</summary>
    internal sealed record Result(double First, double Total, int Underruns, string? Error, bool Refused = false);

    /// <summary>Counts the moments a player fed by this stream would have run dry.</summary>
    internal sealed class Playback(Stopwatch clock)
    {
        private double? first;
        private double bufferedUntil;

        public int Underruns { get; private set; }

        public double? First => first;

        public void Arrived(double audioSeconds)
        {
            if (audioSeconds <= 0)
            {
                return;
            }

            var now = clock.Elapsed.TotalSeconds;
            if (first is null)
            {
                first = now;
                bufferedUntil = now + audioSeconds;
                return;
            }

            if (now > bufferedUntil)
            {
                // Everything received had finished playing before this arrived: an audible gap.
                Underruns++;
                bufferedUntil = now;
            }

            bufferedUntil += audioSeconds;
        }
    }

    /// <summary>The floor: engine_direct.py, one process for the whole run, asked for rounds on its stdin.</summary>
    internal sealed class DirectEngine : IAsyncDisposable
    {
        private readonly Process process;
        private readonly SemaphoreSlim gate = new(1, 1);
        private readonly Lock sync = new();
        private int waiting;
        private TaskCompletionSource<List<Result>>? round;

        private DirectEngine(Process process) => this.process = process;

        public static async Task<DirectEngine> StartAsync(BenchOptions o)
        {
            var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[] { o.DirectScript, "--voice-dir", o.VoiceDir, "--sample", o.Sample, "--text", o.Text })
            {
                psi.ArgumentList.Add(a);
            }

            var process = Process.Start(psi)!;
            var ready = await process.StandardOutput.ReadLineAsync();
            return ready == "ready" ? new DirectEngine(process) : throw new InvalidOperationException($"engine_direct.py did not start: {ready}");
        }

        private int roundSize;

        /// <summary>Called by each client of a round; the round starts when all have called.</summary>
        private async Task<Result> SpeakAsync()
        {
            TaskCompletionSource<List<Result>> mine;
            int index;
            lock (sync)
            {
                round ??= new TaskCompletionSource<List<Result>>(TaskCreationOptions.RunContinuationsAsynchronously);
                mine = round;
                index = waiting++;
                if (waiting == roundSize)
                {
                    waiting = 0;
                    round = null;
                    _ = RunAsync(roundSize, mine);
                }
            }

            return (await mine.Task)[index];
        }

        /// <summary>Clients of the floor: the requests of one round are gathered and run together in Python.</summary>
        public List<Client> Clients(int n)
        {
            roundSize = n;
            return [.. Enumerable.Range(0, n).Select(_ => new Client(SpeakAsync, () => ValueTask.CompletedTask))];
        }

        private async Task RunAsync(int n, TaskCompletionSource<List<Result>> done)
        {
            await gate.WaitAsync();
            try
            {
                await process.StandardInput.WriteLineAsync(n.ToString(CultureInfo.InvariantCulture));
                await process.StandardInput.FlushAsync();
                var line = await process.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("engine_direct.py ended");
                var figures = JsonSerializer.Deserialize<List<double[]>>(line)!;
                done.SetResult([.. figures.Select(f => new Result(f[0], f[1], (int)f[2], null))]);
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
            finally
            {
                gate.Release();
            }
        }

        public async ValueTask DisposeAsync()
        {
            process.StandardInput.Close();
            await process.WaitForExitAsync();
            process.Dispose();
            gate.Dispose();
        }
    }

    internal sealed class Client(Func<Task<Result>> speak, Func<ValueTask> dispose) : IAsyncDisposable
    {
        public Task<Result> SpeakAsync() => speak();

        public ValueTask DisposeAsync() => dispose();

        public static async Task<Client> SignalRAsync(BenchOptions o)
        {
            var hub = new HubConnectionBuilder()
                .WithUrl(new Uri(new Uri(o.Timbre), "/hubs/speech"), h => h.AccessTokenProvider = () => Task.FromResult<string?>(o.Key))
                .AddMessagePackProtocol()
                .Build();
            await hub.StartAsync();
            return new Client(async () =>
            {
                var clock = Stopwatch.StartNew();
                var playback = new Playback(clock);
                try
                {
                    await foreach (var chunk in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = o.Text, Voice = o.Voice }))
                    {
                        playback.Arrived(chunk.Pcm.Length / 2.0 / chunk.SampleRate);
                    }

                    return new Result(playback.First ?? double.NaN, clock.Elapsed.TotalSeconds, playback.Underruns, null);
                }
                catch (Microsoft.AspNetCore.SignalR.HubException e)
                {
                    // A full queue is refused with "... is busy ..."; anything else is a failure.
                    var refused = e.Message.Contains("is busy", StringComparison.Ordinal);
                    return new Result(double.NaN, clock.Elapsed.TotalSeconds, 0, e.Message, refused);
                }
            }, hub.DisposeAsync);
        }

        public static Client Rest(HttpClient http, BenchOptions o, string path)
        {
            object body = path == "/v1/speech"
                ? new { text = o.Text, voice = o.Voice, stream = true, format = "pcm" }
                : new { model = "tts-1", input = o.Text, voice = o.Voice, response_format = "pcm" };
            return new Client(async () =>
            {
                var clock = Stopwatch.StartNew();
                var playback = new Playback(clock);
                using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(o.Timbre), path)) { Content = JsonContent.Create(body) };
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                if (!response.IsSuccessStatusCode)
                {
                    return new Result(double.NaN, clock.Elapsed.TotalSeconds, 0, ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture), response.StatusCode == HttpStatusCode.TooManyRequests);
                }

                await using var stream = await response.Content.ReadAsStreamAsync();
                var buffer = new byte[64 * 1024];
                int n;
                while ((n = await stream.ReadAsync(buffer)) > 0)
                {
                    playback.Arrived(n / 2.0 / 24000);
                }

                return new Result(playback.First ?? double.NaN, clock.Elapsed.TotalSeconds, playback.Underruns, null);
            }, () => ValueTask.CompletedTask);
        }

        public static Client FastApi(HttpClient http, BenchOptions o) => new(async () =>
        {
            var clock = Stopwatch.StartNew();
            using var response = await http.PostAsJsonAsync(new Uri(new Uri(o.FastApi), "/tts"), new { text = o.Text });
            if (!response.IsSuccessStatusCode)
            {
                return new Result(double.NaN, clock.Elapsed.TotalSeconds, 0, ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
            }

            var json = await response.Content.ReadFromJsonAsync<JsonElement>();
            var wav = Convert.FromBase64String(json.GetProperty("audio").GetString()!);
            // Nothing can play before the whole clip has arrived and been decoded.
            var done = clock.Elapsed.TotalSeconds;
            return new Result(done, done, 0, wav.Length > 44 ? null : "empty");
        }, () => ValueTask.CompletedTask);
    }

    internal sealed record Row(string Path, int Concurrency, double FirstP50, double FirstP95, double FirstMean, double TotalP50, double TotalP95, int Underruns, int Served, int Refused, double? RefusedSlowest, int Errors, long? Rss, double? ServerFirst)
    {
        public static Row Of(string path, int c, List<Result> results, long? rss, double? serverFirst)
        {
            var ok = results.Where(r => r.Error is null).ToList();
            var refused = results.Where(r => r.Refused).ToList();
            return new Row(path, c,
                Percentile(ok.Select(r => r.First), 0.5), Percentile(ok.Select(r => r.First), 0.95), ok.Count > 0 ? ok.Average(r => r.First) : double.NaN,
                Percentile(ok.Select(r => r.Total), 0.5), Percentile(ok.Select(r => r.Total), 0.95),
                ok.Sum(r => r.Underruns), ok.Count, refused.Count, refused.Count > 0 ? refused.Max(r => r.Total) : null,
                results.Count - ok.Count - refused.Count, rss, serverFirst);
        }

        private static double Percentile(IEnumerable<double> values, double p)
        {
            var sorted = values.Order().ToArray();
            return sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
        }

        public string Format() =>
            $"| {Path} | {Concurrency} | {Ms(FirstP50)} | {Ms(FirstP95)} | {Ms(TotalP50)} | {Ms(TotalP95)} | {Underruns} | {Refused} | {Errors} | {(Rss is { } r ? $"{r / (1024 * 1024)} MiB" : "—")} | {(ServerFirst is { } f ? Ms(f) : "—")} |";

        private static string Ms(double s) => double.IsNaN(s) ? "—" : $"{s * 1000:0.0} ms";
    }
}
