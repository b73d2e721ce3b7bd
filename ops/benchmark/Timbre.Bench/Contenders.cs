using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Timbre.ControlPlane.Speech;

namespace Timbre.Bench;

internal static class Paths
{
    public const string Direct = "Python engine, direct (floor)";
    public const string Control = "the same, a second process (A/A control)";
    public const string SignalR = "SignalR (MessagePack)";
    public const string Rest = "REST /v1/speech, chunked";
    public const string OpenAi = "OpenAI /v1/audio/speech, pcm";
    public const string FastApi = "FastAPI reference (base64 JSON)";
    public static readonly string[] Timbre = [SignalR, Rest, OpenAi];
}

/// <summary>A contender; <see cref="Open"/> connects what c requests started together need.</summary>
internal sealed record BenchPath(string Name, bool Timbre, Func<int, Task<Round>> Open);

/// <summary>Runs c requests started together, as often as asked; disposing it closes their connections.</summary>
internal sealed class Round(Func<Task<Result[]>> run, Func<ValueTask> dispose) : IAsyncDisposable
{
    public Task<Result[]> RunAsync() => run();

    public ValueTask DisposeAsync() => dispose();

    /// <summary>One request on each client, all at once.</summary>
    public static Round Of(IReadOnlyList<Client> clients) => new(
        () => Task.WhenAll(clients.Select(c => c.SpeakAsync())),
        async () =>
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        });
}

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

/// <summary>The floor (or its A/A control): engine_direct.py, one process for the whole run, asked for rounds on its stdin.</summary>
internal sealed class DirectEngine : IAsyncDisposable
{
    private readonly Process process;

    private DirectEngine(Process process) => this.process = process;

    public int Pid => process.Id;

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

    /// <summary>n requests started together on n Python threads; the bench runs one round at a time.</summary>
    public async Task<Result[]> RoundAsync(int n)
    {
        await process.StandardInput.WriteLineAsync(n.ToString(CultureInfo.InvariantCulture));
        await process.StandardInput.FlushAsync();
        var line = await process.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("engine_direct.py ended");
        return [.. JsonSerializer.Deserialize<List<double[]>>(line)!.Select(f => new Result(f[0], f[1], (int)f[2], null))];
    }

    public async ValueTask DisposeAsync()
    {
        process.StandardInput.Close();
        await process.WaitForExitAsync();
        process.Dispose();
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
