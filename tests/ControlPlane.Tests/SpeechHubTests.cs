using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Observability;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Tests;

/// <summary>/hubs/speech through the real SignalR .NET client, over both protocols, against Kestrel on loopback.</summary>
public sealed class SpeechHubTests : IAsyncLifetime, IDisposable
{
    private const string Key = "hub-test-key-0123456789abcdef";
    private readonly TimbreApp app = new();

    public async Task InitializeAsync()
    {
        app.Settings["Timbre:Auth:ApiKeys:0"] = Key;
        // Every category at every level, so the check that the key never reaches a log is meaningful.
        app.Settings["Logging:LogLevel:Default"] = "Trace";
        app.Settings["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace";
        await app.EnrolAsync("Ada", Key);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => app.Dispose();

    private async Task<HubConnection> ConnectAsync(bool messagePack, string? key = Key, string query = "")
    {
        var builder = new HubConnectionBuilder().WithUrl(new Uri(app.BaseAddress, "/hubs/speech" + query), o =>
        {
            if (key is not null)
            {
                o.AccessTokenProvider = () => Task.FromResult<string?>(key);
            }
        });
        if (messagePack)
        {
            builder.AddMessagePackProtocol();
        }

        var connection = builder.Build();
        await connection.StartAsync();
        return connection;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task StreamSpeech_streams_ordered_pcm_chunks_of_100_to_200_ms_ending_with_a_final_marker(bool messagePack)
    {
        await using var hub = await ConnectAsync(messagePack);
        var chunks = new List<AudioChunk>();
        await foreach (var chunk in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = "Hello there. This is the second sentence, and a third one follows it.", Voice = "ada" }))
        {
            chunks.Add(chunk);
        }

        Assert.True(chunks.Count > 5, $"only {chunks.Count} chunks");
        Assert.Equal(Enumerable.Range(0, chunks.Count).Select(i => (long)i), chunks.Select(c => c.Sequence));
        Assert.All(chunks, c => Assert.Equal((24000, 1), (c.SampleRate, c.Channels)));
        Assert.True(chunks[^1].IsFinal);
        Assert.Empty(chunks[^1].Pcm);
        Assert.DoesNotContain(chunks[..^1], c => c.IsFinal);
        // Full chunks are 160 ms; only the last piece of each engine fragment may be shorter.
        var seconds = chunks[..^1].Select(c => c.Pcm.Length / 2 / 24000.0).ToList();
        Assert.All(seconds, s => Assert.InRange(s, 0.0001, 0.2));
        Assert.True(seconds.Count(s => s >= 0.1) > seconds.Count / 2, "most chunks should be 100–200 ms");

        // The same request over REST produces the same amount of audio.
        using var http = app.CreateClient(Key);
        var wav = await (await http.PostAsync("/v1/speech", System.Net.Http.Json.JsonContent.Create(new { text = "Hello there. This is the second sentence, and a third one follows it.", voice = "ada" }))).Content.ReadAsByteArrayAsync();
        Assert.Equal(Wav.Parse(wav).DataBytes, chunks.Sum(c => c.Pcm.Length));
    }

    [Fact]
    public async Task The_first_chunk_arrives_before_synthesis_of_a_long_text_finishes()
    {
        await using var hub = await ConnectAsync(messagePack: true);
        var stream = hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = Audio.LongText(), Voice = "ada" });
        var count = 0;
        await foreach (var chunk in stream)
        {
            if (count++ == 0)
            {
                app.Logs.Mark("TEST: first chunk received");
            }
        }

        var lines = app.Logs.Lines;
        var first = lines.ToList().FindIndex(l => l.StartsWith("TEST: first chunk received", StringComparison.Ordinal));
        var ended = lines.ToList().FindIndex(l => l.Contains("Speech stream on classic for voice ada ended completed", StringComparison.Ordinal));
        Assert.True(first >= 0 && ended >= 0, "both events must be logged");
        Assert.True(first < ended, "the first chunk must reach the client before the engine has finished the text");
    }

    [Fact]
    public async Task Cancelling_the_stream_closes_the_engine_generator_and_frees_the_slot()
    {
        var metrics = app.Get<TimbreMetrics>();
        var engines = app.Get<EngineHost>();
        var scheduler = app.Get<SpeechScheduler>();
        await using var hub = await ConnectAsync(messagePack: true);
        using var cts = new CancellationTokenSource();
        var received = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = Audio.LongText(), Voice = "ada" }, cts.Token))
            {
                if (++received == 2)
                {
                    await cts.CancelAsync();
                }
            }
        });

        await Eventually(() => metrics.StreamsEnded("classic", "cancelled") == 1);
        Assert.Equal(0, engines.ActiveStreams);
        Assert.Equal(0, scheduler.RunningOn("classic"));
        Assert.Equal(0, metrics.StreamsEnded("classic", "completed"));
    }

    [Fact]
    public async Task A_request_id_streams_once_and_CancelSpeech_from_another_connection_stops_it()
    {
        await using var first = await ConnectAsync(messagePack: false);
        await using var second = await ConnectAsync(messagePack: false);
        var request = new SpeechRequest { Text = Audio.LongText(), Voice = "ada", RequestId = "editor-1" };
        await using var running = first.StreamAsync<AudioChunk>("StreamSpeech", request).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());

        var duplicate = await Assert.ThrowsAsync<HubException>(async () =>
        {
            await foreach (var _ in second.StreamAsync<AudioChunk>("StreamSpeech", request))
            {
            }
        });
        Assert.Contains("already streaming", duplicate.Message, StringComparison.Ordinal);

        Assert.True(await second.InvokeAsync<bool>("CancelSpeech", "editor-1"));
        var drained = 0;
        var ended = false;
        try
        {
            while (await running.MoveNextAsync())
            {
                drained++;
                ended |= running.Current.IsFinal;
            }
        }
        catch (HubException)
        {
        }
        catch (OperationCanceledException)
        {
        }

        Assert.False(ended, $"the cancelled stream ran to its end ({drained} more chunks)");
        await Eventually(() => app.Get<TimbreMetrics>().StreamsEnded("classic", "cancelled") == 1);
        Assert.False(await second.InvokeAsync<bool>("CancelSpeech", "editor-1"));
    }

    [Fact]
    public async Task CancelSpeech_works_on_the_connection_that_is_streaming()
    {
        // A client such as the MCP server has one connection: stop() must not wait behind the stream.
        await using var hub = await ConnectAsync(messagePack: true);
        await using var running = hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = Audio.LongText(), Voice = "ada", RequestId = "mine" }).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());
        Assert.True(await hub.InvokeAsync<bool>("CancelSpeech", "mine"));
        await SpeechHubTests.Eventually(() => app.Get<TimbreMetrics>().StreamsEnded("classic", "cancelled") == 1);
    }

    [Theory]
    [InlineData("", "ada", "text is empty")]
    [InlineData("Hello.", "nobody", "No voice 'nobody'")]
    [InlineData("Hello.", "", "voice is required")]
    public async Task Bad_requests_fail_the_stream_with_a_message_that_says_what_to_change(string text, string voice, string expected)
    {
        await using var hub = await ConnectAsync(messagePack: true);
        var error = await Assert.ThrowsAsync<HubException>(async () =>
        {
            await foreach (var _ in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = text, Voice = voice }))
            {
            }
        });
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Oversized_text_is_refused_with_the_limit()
    {
        await using var hub = await ConnectAsync(messagePack: false);
        var error = await Assert.ThrowsAsync<HubException>(async () =>
        {
            await foreach (var _ in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = new string('a', 5001), Voice = "ada" }))
            {
            }
        });
        Assert.Contains("at most 5000", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-key-0123456789abcdef")]
    public async Task The_hub_refuses_a_missing_or_wrong_key(string? key)
    {
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => ConnectAsync(messagePack: false, key));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, error.StatusCode);
    }

    [Fact]
    public async Task A_key_in_the_query_string_is_accepted_and_never_logged()
    {
        // As a browser sends it: WebSockets cannot carry an Authorization header there.
        await using var hub = await ConnectAsync(messagePack: false, key: null, query: "?access_token=" + Key);
        var chunks = 0;
        await foreach (var _ in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = "Hello.", Voice = "ada" }))
        {
            chunks++;
        }

        Assert.True(chunks > 1);
        var lines = app.Logs.Lines;
        Assert.Contains(lines, l => l.Contains("/hubs/speech", StringComparison.Ordinal));
        Assert.True(lines.Any(l => l.Contains("access_token=[redacted]", StringComparison.Ordinal)), string.Join("\n", lines.Where(l => l.Contains("hubs", StringComparison.Ordinal))));
        Assert.DoesNotContain(lines, l => l.Contains(Key, StringComparison.Ordinal));
    }

    internal static async Task Eventually(Func<bool> condition, double seconds = 5)
    {
        // Polls for a state change that follows an event the test caused; the bound only stops a broken build from hanging.
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < until && !condition())
        {
            await Task.Delay(25);
        }

        Assert.True(condition());
    }
}
