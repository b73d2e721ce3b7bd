using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Timbre.ControlPlane.Observability;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// Clients that stop reading, and requests that run past their deadline, on every path of the real
/// server: none may keep an engine slot, get a bare 500, or fill the error log.
/// </summary>
public sealed class SlowClientTests
{
    private static readonly string Long = Audio.LongText(40);

    /// <summary>
    /// Sends a speech request over a raw socket and then reads nothing. The receive buffer is kept small, and
    /// so is the server's send buffer (<see cref="TimbreApp.SendBufferBytes"/>), so the server's writes block
    /// once a second or two of audio is queued, as with a client whose reader hung, instead of after the
    /// megabytes loopback would otherwise buffer.
    /// </summary>
    private static async Task<Socket> StopReadingAsync(Uri server, string path, object body)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(IPAddress.Loopback, server.Port);
        var json = JsonSerializer.SerializeToUtf8Bytes(body);
        var head = Encoding.ASCII.GetBytes($"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {json.Length}\r\n\r\n");
        await socket.SendAsync(head.Concat(json).ToArray());
        return socket;
    }

    [Fact]
    public async Task Sixteen_clients_that_stop_reading_are_cut_off_and_an_ordinary_request_is_then_served()
    {
        using var app = new TimbreApp { SendBufferBytes = 8192 };
        app.Settings["Timbre:Speech:WriteStallSeconds"] = "2";
        // Longer than the test may take: only the stall limit can free these slots.
        app.Settings["Timbre:Speech:RequestTimeoutSeconds"] = "120";
        await app.EnrolAsync("Ada");
        var scheduler = app.Get<SpeechScheduler>();
        var metrics = app.Get<TimbreMetrics>();
        var stalled = new List<Socket>();
        try
        {
            for (var i = 0; i < 16; i++)
            {
                stalled.Add(await StopReadingAsync(app.BaseAddress, "/v1/speech", new { text = Long, voice = "ada", stream = true, format = "pcm" }));
            }

            await SpeechHubTests.Eventually(() => scheduler.RunningOn("classic") == 16, 30);
            using var client = app.CreateClient();
            client.Timeout = TimeSpan.FromSeconds(90);
            using var ordinary = await client.PostAsJsonAsync("/v1/speech", new { text = "Hello.", voice = "ada" });
            Assert.Equal(HttpStatusCode.OK, ordinary.StatusCode);
            Assert.True(Wav.Parse(await ordinary.Content.ReadAsByteArrayAsync()).Seconds > 0.3);
            await SpeechHubTests.Eventually(() => metrics.StreamsEnded("classic", "slow_client") == 16, 30);
            Assert.Equal(0, scheduler.RunningOn("classic"));
            Assert.Contains("timbre_rejections_total{reason=\"slow_client\"} 16", await client.GetStringAsync("/metrics"), StringComparison.Ordinal);
            app.AssertNoErrorsLogged();
            Assert.Equal(16, app.Logs.Lines.Count(l => l.StartsWith("Information ", StringComparison.Ordinal) && l.Contains("accepted no audio for Timbre:Speech:WriteStallSeconds", StringComparison.Ordinal)));
        }
        finally
        {
            stalled.ForEach(s => s.Dispose());
        }
    }

    // Enough audio to overflow every buffer between the engine and the client (ffmpeg's pipes, Kestrel's,
    // the kernel's, kept small here by SendBufferBytes): a compressed format needs the longest text, or all of
    // it fits and the slot is freed anyway.
    private static readonly string Longest = Audio.LongText(60);

    public static TheoryData<string, string> Paths() => new()
    {
        { "/v1/audio/speech", "pcm" },
        { "/v1/audio/speech", "sse" },
        { "/v1/audio/speech", "flac" },
        { "/v1/speech", "flac" },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task A_client_that_stops_reading_is_cut_off_on_every_http_path(string path, string format)
    {
        using var app = new TimbreApp { SendBufferBytes = 8192 };
        app.Settings["Timbre:Speech:WriteStallSeconds"] = "2";
        app.Settings["Timbre:Speech:RequestTimeoutSeconds"] = "120";
        app.Settings["Timbre:Speech:Concurrency:classic"] = "2";
        await app.EnrolAsync("Ada");
        var metrics = app.Get<TimbreMetrics>();
        object body = path == "/v1/speech"
            ? new { text = Longest, voice = "ada", stream = true, format }
            : format == "sse"
                ? new { model = "tts-1", input = Longest, voice = "ada", response_format = "pcm", stream_format = "sse" }
                : new { model = "tts-1", input = Longest, voice = "ada", response_format = format };
        using var first = await StopReadingAsync(app.BaseAddress, path, body);
        using var second = await StopReadingAsync(app.BaseAddress, path, body);
        await SpeechHubTests.Eventually(() => metrics.StreamsEnded("classic", "slow_client") == 2, 60);
        Assert.Equal(0, app.Get<SpeechScheduler>().RunningOn("classic"));
        Assert.Equal(0, app.Get<Engines.EngineHost>().ActiveStreams);
        app.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task A_hub_client_that_stops_reading_is_cut_off_and_its_slot_freed()
    {
        using var app = new TimbreApp { SendBufferBytes = 8192 };
        app.Settings["Timbre:Speech:WriteStallSeconds"] = "2";
        await app.EnrolAsync("Ada");
        var metrics = app.Get<TimbreMetrics>();
        // A raw WebSocket speaking SignalR's JSON protocol, so that nothing reads behind the test's back.
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{app.BaseAddress.Port}/hubs/speech"), default);
        await socket.SendAsync("{\"protocol\":\"json\",\"version\":1}\u001e"u8.ToArray(), WebSocketMessageType.Text, true, default);
        var handshake = new byte[256];
        var received = await socket.ReceiveAsync(handshake, default);
        Assert.Equal("{}\u001e", Encoding.UTF8.GetString(handshake, 0, received.Count));
        var invocation = JsonSerializer.Serialize(new { type = 4, invocationId = "1", target = "StreamSpeech", arguments = new[] { new { text = Long, voice = "ada" } } }) + "\u001e";
        await socket.SendAsync(Encoding.UTF8.GetBytes(invocation), WebSocketMessageType.Text, true, default);

        await SpeechHubTests.Eventually(() => metrics.StreamsEnded("classic", "slow_client") == 1, 60);
        Assert.Equal(0, app.Get<SpeechScheduler>().RunningOn("classic"));
        app.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task The_request_timeout_bounds_a_stream_whose_client_stopped_reading()
    {
        using var app = new TimbreApp { SendBufferBytes = 8192 };
        app.Settings["Timbre:Speech:WriteStallSeconds"] = "600";
        app.Settings["Timbre:Speech:RequestTimeoutSeconds"] = "4";
        await app.EnrolAsync("Ada");
        var metrics = app.Get<TimbreMetrics>();
        var clock = Stopwatch.StartNew();
        using var stalled = await StopReadingAsync(app.BaseAddress, "/v1/speech", new { text = Long, voice = "ada", stream = true, format = "pcm" });
        await SpeechHubTests.Eventually(() => metrics.StreamsEnded("classic", "timeout") == 1, 30);
        Assert.InRange(clock.Elapsed.TotalSeconds, 3.5, 15);
        Assert.Equal(0, app.Get<SpeechScheduler>().RunningOn("classic"));
        using var client = app.CreateClient();
        Assert.Contains("timbre_rejections_total{reason=\"timeout\"} 1", await client.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_whole_file_request_past_its_timeout_is_a_504_problem_counted_once()
    {
        using var app = new TimbreApp();
        app.Settings["Timbre:Speech:RequestTimeoutSeconds"] = "3";
        await app.EnrolAsync("Ada");
        using var client = app.CreateClient();
        using var response = await client.PostAsJsonAsync("/v1/speech", new { text = string.Concat(Enumerable.Repeat("9 ", 2500)), voice = "ada", format = "wav" });
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("Timbre:Speech:RequestTimeoutSeconds", problem.GetProperty("detail").GetString()!, StringComparison.Ordinal);
        var metricsText = await client.GetStringAsync("/metrics");
        Assert.Contains("timbre_rejections_total{reason=\"timeout\"} 1", metricsText, StringComparison.Ordinal);
        Assert.DoesNotContain("timbre_engine_errors_total{", metricsText, StringComparison.Ordinal);
        app.AssertNoErrorsLogged();
    }
}
