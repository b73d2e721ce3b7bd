using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Timbre.Bench;
using Timbre.ControlPlane.Speech;

// ops/bench's client: drives Timbre's three streaming surfaces and the FastAPI reference at each
// concurrency and prints one table. Figures, not pass/fail: the targets are printed beside them.
var options = BenchOptions.Parse(args);
var rows = new List<Row>();
using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
http.DefaultRequestHeaders.Authorization = new("Bearer", options.Key);
var direct = JsonSerializer.Deserialize<Dictionary<string, List<double[]>>>(await File.ReadAllTextAsync(options.DirectJson))!;

var transports = new (string Name, Func<int, Task<Client>> Connect)[]
{
    ("SignalR (MessagePack)", async _ => await Client.SignalRAsync(options)),
    ("REST /v1/speech, chunked", _ => Task.FromResult(Client.Rest(http, options, "/v1/speech"))),
    ("OpenAI /v1/audio/speech, pcm", _ => Task.FromResult(Client.Rest(http, options, "/v1/audio/speech"))),
    ("FastAPI reference (base64 JSON)", _ => Task.FromResult(Client.FastApi(http, options))),
};

// Warm-up: first requests pay for JIT, connection set-up and the voice profile's disk read.
foreach (var (_, connect) in transports)
{
    await using var warm = await connect(0);
    for (var i = 0; i < 3; i++)
    {
        await warm.SpeakAsync();
    }
}

foreach (var c in options.Concurrency)
{
    var d = direct[c.ToString(CultureInfo.InvariantCulture)];
    rows.Add(Row.Of("Python engine, direct (floor)", c, d.Select(x => new Result(x[0], x[1], 0, null)).ToList(), null, null));
    foreach (var (name, connect) in transports)
    {
        var before = await ServerFirstAudioAsync(http, options);
        var total = Math.Max(options.Requests, c);
        var clients = new List<Client>();
        for (var i = 0; i < c; i++)
        {
            clients.Add(await connect(i));
        }

        var results = new List<Result>();
        var next = 0;
        await Task.WhenAll(clients.Select(async client =>
        {
            while (Interlocked.Increment(ref next) <= total)
            {
                var r = await client.SpeakAsync();
                lock (results)
                {
                    results.Add(r);
                }
            }
        }));
        foreach (var client in clients)
        {
            await client.DisposeAsync();
        }

        var fastApi = name.StartsWith("FastAPI", StringComparison.Ordinal);
        var after = await ServerFirstAudioAsync(http, options);
        // Timbre's own measure, from a request's arrival to the engine's first chunk: what the
        // client sees beyond it is transport.
        double? serverFirst = fastApi || after.Count == before.Count ? null : (after.Sum - before.Sum) / (after.Count - before.Count);
        rows.Add(Row.Of(name, c, results, fastApi ? Rss(options.FastApiPid) : Rss(options.TimbrePid), serverFirst));
    }
}

Console.WriteLine();
Console.WriteLine($"Text: \"{options.Text}\" ({options.Text.Length} characters), classic engine, {Environment.ProcessorCount} cores.");
Console.WriteLine();
Console.WriteLine("| path | concurrency | first audio p50 | first audio p95 | total p50 | total p95 | underruns | errors | server RSS | engine's first audio in Timbre (mean) |");
Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (var r in rows)
{
    Console.WriteLine(r.Format());
}

Console.WriteLine();
var floor = rows.Single(r => r.Concurrency == 1 && r.Path.StartsWith("Python engine", StringComparison.Ordinal));
var hub1 = rows.Single(r => r.Concurrency == 1 && r.Path.StartsWith("SignalR", StringComparison.Ordinal));
var fastapi1 = rows.Single(r => r.Concurrency == 1 && r.Path.StartsWith("FastAPI", StringComparison.Ordinal));
var hub16 = rows.FirstOrDefault(r => r.Concurrency == 16 && r.Path.StartsWith("SignalR", StringComparison.Ordinal));
Console.WriteLine($"Target: SignalR first audio within 5 ms of the direct call at concurrency 1 (p50): {Ms(hub1.FirstP50 - floor.FirstP50)} more → {(hub1.FirstP50 - floor.FirstP50 <= 0.005 ? "met" : "NOT met")}");
if (hub16 is not null)
{
    var underruns16 = rows.Where(r => r.Concurrency == 16 && !r.Path.StartsWith("FastAPI", StringComparison.Ordinal) && !r.Path.StartsWith("Python", StringComparison.Ordinal)).Sum(r => r.Underruns);
    Console.WriteLine($"Target: no underruns at concurrency 16 on any Timbre path: {underruns16} → {(underruns16 == 0 ? "met" : "NOT met")}");
}

var ratio = fastapi1.FirstP50 / hub1.FirstP50;
Console.WriteLine($"Target: first audio at least 5x sooner than FastAPI at concurrency 1 (p50): {ratio:0.0}x → {(ratio >= 5 ? "met" : "NOT met")}");

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
    internal sealed record BenchOptions(string Timbre, string Key, string FastApi, string Voice, string Text, string DirectJson, int TimbrePid, int FastApiPid, int[] Concurrency, int Requests)
    {
        public static BenchOptions Parse(string[] args)
        {
            var map = new Dictionary<string, string>();
            for (var i = 0; i + 1 < args.Length; i += 2)
            {
                map[args[i].TrimStart('-')] = args[i + 1];
            }

            return new BenchOptions(
                map["timbre"], map["key"], map["fastapi"], map["voice"], map["text"], map["direct"],
                int.Parse(map.GetValueOrDefault("timbre-pid", "0"), CultureInfo.InvariantCulture),
                int.Parse(map.GetValueOrDefault("fastapi-pid", "0"), CultureInfo.InvariantCulture),
                map.GetValueOrDefault("concurrency", "1,4,16,64").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(),
                int.Parse(map.GetValueOrDefault("requests", "20"), CultureInfo.InvariantCulture));
        }
    }

    /// <summary>One request's figures: seconds to first audio and to the end, and playback gaps.</summary>
    internal sealed record Result(double First, double Total, int Underruns, string? Error);

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
                    return new Result(double.NaN, clock.Elapsed.TotalSeconds, 0, e.Message);
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
                    return new Result(double.NaN, clock.Elapsed.TotalSeconds, 0, ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
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

    internal sealed record Row(string Path, int Concurrency, double FirstP50, double FirstP95, double TotalP50, double TotalP95, int Underruns, int Errors, long? Rss, double? ServerFirst)
    {
        public static Row Of(string path, int c, List<Result> results, long? rss, double? serverFirst)
        {
            var ok = results.Where(r => r.Error is null).ToList();
            return new Row(path, c,
                Percentile(ok.Select(r => r.First), 0.5), Percentile(ok.Select(r => r.First), 0.95),
                Percentile(ok.Select(r => r.Total), 0.5), Percentile(ok.Select(r => r.Total), 0.95),
                ok.Sum(r => r.Underruns), results.Count - ok.Count, rss, serverFirst);
        }

        private static double Percentile(IEnumerable<double> values, double p)
        {
            var sorted = values.Order().ToArray();
            return sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
        }

        public string Format() =>
            $"| {Path} | {Concurrency} | {Ms(FirstP50)} | {Ms(FirstP95)} | {Ms(TotalP50)} | {Ms(TotalP95)} | {Underruns} | {Errors} | {(Rss is { } r ? $"{r / (1024 * 1024)} MiB" : "—")} | {(ServerFirst is { } f ? Ms(f) : "—")} |";

        private static string Ms(double s) => double.IsNaN(s) ? "—" : $"{s * 1000:0.0} ms";
    }
}
