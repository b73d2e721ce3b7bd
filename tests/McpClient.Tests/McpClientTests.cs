using System.Net.Http.Json;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Timbre.ControlPlane.Observability;
using Timbre.ControlPlane.Provenance;
using Timbre.ControlPlane.Tests;

namespace Timbre.McpClient.Tests;

/// <summary>
/// The built McpClient as Cursor runs it: a separate process spoken to over stdio by the MCP SDK's
/// own client, against the real ControlPlane on loopback. TIMBRE_PLAYER is a capture command that
/// records what it is given.
/// </summary>
public sealed class McpClientTests : IAsyncLifetime, IDisposable
{
    private const string Key = "mcp-test-key-0123456789abcdef";
    private readonly TimbreApp app = new();
    private readonly DirectoryInfo work = Directory.CreateTempSubdirectory("timbre-mcp-");
    private readonly List<string> clientLog = [];

    public async Task InitializeAsync()
    {
        app.Settings["Timbre:Auth:ApiKeys:0"] = Key;
        await app.EnrolAsync("Ada", Key);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose()
    {
        app.Dispose();
        work.Delete(recursive: true);
    }

    /// <summary>Records each playback's PCM in its own file, with start and end marks in events.log.</summary>
    private string Capture => $"n=$(date +%s%N)-$$; {{ echo start $n; cat > \"{work.FullName}/pcm-$n-{{rate}}-{{channels}}.raw\"; echo end $n; }} >> '{work.FullName}/events.log'";

    private async Task<ModelContextProtocol.Client.McpClient> StartClientAsync(string? url = null, string? key = Key, string? voice = "ada", string? player = null)
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "ControlPlane.sln")))
        {
            root = Path.GetDirectoryName(root.TrimEnd('/'))!;
        }

        var config = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var environment = new Dictionary<string, string?>
        {
            ["TIMBRE_URL"] = url ?? app.BaseAddress.ToString(),
            ["TIMBRE_API_KEY"] = key,
            ["TIMBRE_VOICE"] = voice,
            ["TIMBRE_PLAYER"] = player ?? Capture,
            ["TIMBRE_STATE_DIR"] = work.FullName,
        };
        var transport = new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = "timbre",
            Command = "dotnet",
            Arguments = [Path.Combine(root, "McpClient", "bin", config, "net10.0", "timbre-mcp.dll")],
            EnvironmentVariables = environment,
            StandardErrorLines = line =>
            {
                lock (clientLog)
                {
                    clientLog.Add(line);
                }

                if (line.Contains("Playback of", StringComparison.Ordinal))
                {
                    app.Logs.Mark("TEST: client playback started");
                }
            },
        });
        return await ModelContextProtocol.Client.McpClient.CreateAsync(transport);
    }

    private static string Text(CallToolResult result) => string.Join("\n", result.Content.OfType<TextContentBlock>().Select(t => t.Text));

    private static Task<CallToolResult> Speak(ModelContextProtocol.Client.McpClient client, string text, bool wait = true, CancellationToken ct = default) =>
        client.CallToolAsync("speak", new Dictionary<string, object?> { ["text"] = text, ["wait"] = wait }, cancellationToken: ct).AsTask();

    private byte[][] Captures() => work.GetFiles("pcm-*.raw").OrderBy(f => f.CreationTimeUtc).Select(f => File.ReadAllBytes(f.FullName)).ToArray();

    [Fact]
    public async Task The_tools_are_described_for_an_agent()
    {
        await using var client = await StartClientAsync();
        var tools = await client.ListToolsAsync();
        Assert.Equal(["list_voices", "speak", "stop"], tools.Select(t => t.Name).Order());
        var speak = tools.Single(t => t.Name == "speak");
        Assert.Contains("speaker", speak.Description, StringComparison.Ordinal);
        var parameters = speak.JsonSchema.GetProperty("properties");
        foreach (var name in new[] { "text", "voice", "language", "wait" })
        {
            Assert.False(string.IsNullOrWhiteSpace(parameters.GetProperty(name).GetProperty("description").GetString()), $"{name} has no description");
        }
    }

    [Fact]
    public async Task Speak_plays_exactly_the_audio_the_server_made()
    {
        const string text = "Hello from the editor. This is the second sentence, and a third one follows it to give the mark some time.";
        await using var client = await StartClientAsync();
        var result = await Speak(client, text);
        Assert.True(result.IsError != true, Text(result));
        Assert.Contains("voice 'ada'", Text(result), StringComparison.Ordinal);
        Assert.Contains("first audio after", Text(result), StringComparison.Ordinal);

        var captured = Assert.Single(Captures());
        Assert.Single(work.GetFiles("pcm-*-24000-1.raw"));
        // What the Mac played carries the provenance mark, which names a clip of the generation log, and
        // it is that clip byte for byte: the log keeps the SHA-256 of the 16-bit PCM the server sent.
        using var http = app.CreateClient(Key);
        using var form = new MultipartFormDataContent { { new ByteArrayContent(Audio.Wav16(captured)), "file", "played.wav" } };
        var found = await (await http.PostAsync("/v1/provenance/detect", form)).Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
        Assert.True(found.GetProperty("detected").GetBoolean(), found.ToString());
        var clip = found.GetProperty("clip").GetProperty("id").GetString()!;
        var logged = Assert.Single(app.Get<GenerationLog>().FindByTag(app.Get<ProvenanceKey>().TagOf(clip)));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(captured)), logged.AudioSha256);
    }

    [Fact]
    public async Task Playback_starts_before_the_server_has_finished_synthesising()
    {
        await using var client = await StartClientAsync();
        var result = await Speak(client, Audio.LongText(30));
        Assert.True(result.IsError != true, Text(result));
        var lines = app.Logs.Lines.ToList();
        var started = lines.FindIndex(l => l.StartsWith("TEST: client playback started", StringComparison.Ordinal));
        var finished = lines.FindIndex(l => l.Contains("ended completed", StringComparison.Ordinal));
        Assert.True(started >= 0 && finished >= 0, "both events must be seen");
        Assert.True(started < finished, "the player must get audio before the engine finishes the text");
    }

    [Fact]
    public async Task Stop_cuts_a_long_text_short_and_cancels_the_servers_stream()
    {
        await using var client = await StartClientAsync();
        var speaking = Speak(client, Audio.LongText(40));
        await Eventually(() => app.Get<TimbreMetrics>().StreamsEnded("classic", "completed") == 0 && clientLog.Any(l => l.Contains("Playback of", StringComparison.Ordinal)));
        var stop = await client.CallToolAsync("stop");
        Assert.Contains("Stopped", Text(stop), StringComparison.Ordinal);
        var result = await speaking;
        Assert.StartsWith("Stopped while speaking", Text(result), StringComparison.Ordinal);
        await Eventually(() => app.Get<TimbreMetrics>().StreamsEnded("classic", "cancelled") == 1);
        Assert.Equal(0, app.Get<TimbreMetrics>().StreamsEnded("classic", "completed"));
    }

    [Fact]
    public async Task Two_processes_speaking_at_once_take_turns_and_stop_reaches_across()
    {
        await using var first = await StartClientAsync();
        await using var second = await StartClientAsync();
        var a = Speak(first, "The first window says this sentence. And then one more.");
        var b = Speak(second, "The second window says something else. It also adds a sentence.");
        var results = await Task.WhenAll(a, b);
        Assert.All(results, r => Assert.True(r.IsError != true, Text(r)));

        // Starts and ends alternate: one playback ends before the next begins.
        var events = File.ReadAllLines(Path.Combine(work.FullName, "events.log")).Select(l => l.Split(' ')).ToList();
        Assert.Equal(4, events.Count);
        Assert.Equal(["start", "end", "start", "end"], events.Select(e => e[0]));
        Assert.Equal(events[0][1], events[1][1]);
        Assert.True(Captures().Length == 2, string.Join(", ", work.GetFiles().Select(f => f.Name)));

        // stop() in one process silences the other's playback.
        var long1 = Speak(first, Audio.LongText(40));
        await Eventually(() => clientLog.Count(l => l.Contains("Playback of", StringComparison.Ordinal)) == 3);
        Assert.Contains("another window", Text(await second.CallToolAsync("stop")), StringComparison.Ordinal);
        Assert.StartsWith("Stopped while speaking", Text(await long1), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Wait_false_returns_at_once_and_playback_goes_on()
    {
        await using var client = await StartClientAsync();
        var result = await Speak(client, "Said in the background. With a second sentence.", wait: false);
        Assert.Contains("in the background", Text(result), StringComparison.Ordinal);
        await Eventually(() => File.Exists(Path.Combine(work.FullName, "events.log")) && File.ReadAllLines(Path.Combine(work.FullName, "events.log")).Any(l => l.StartsWith("end", StringComparison.Ordinal)));
        Assert.True(Assert.Single(Captures()).Length > 24000 * 2, "at least a second of audio was played");
    }

    [Fact]
    public async Task A_stream_that_breaks_mid_text_ends_playback_cleanly_and_says_so()
    {
        var server = new TimbreApp();
        server.Settings["Timbre:Speech:DrainTimeoutSeconds"] = "0";
        await server.EnrolAsync("Ada");
        await using var client = await StartClientAsync(url: server.BaseAddress.ToString(), key: null);
        var speaking = Speak(client, Audio.LongText(60));
        await Eventually(() => clientLog.Any(l => l.Contains("Playback of", StringComparison.Ordinal)));
        server.Dispose();
        var result = await speaking;
        Assert.True(result.IsError != true, Text(result));
        Assert.Contains("broke part-way", Text(result), StringComparison.Ordinal);
        // The player was closed, not left waiting for audio that will never come.
        Assert.Equal(["start", "end"], File.ReadAllLines(Path.Combine(work.FullName, "events.log")).Select(l => l.Split(' ')[0]));
    }

    [Fact]
    public async Task List_voices_marks_the_default()
    {
        await using var client = await StartClientAsync();
        var text = Text(await client.CallToolAsync("list_voices"));
        Assert.Contains("- ada (Ada, ", text, StringComparison.Ordinal);
        Assert.Contains("default", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_key_is_reported_as_such()
    {
        await using var client = await StartClientAsync(key: "not-the-right-key-0123456789");
        var result = await Speak(client, "Hello.");
        Assert.True(result.IsError == true);
        Assert.Contains("refused the API key", Text(result), StringComparison.Ordinal);
        Assert.Contains("TIMBRE_API_KEY", Text(result), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Missing_settings_are_reported_with_what_to_set()
    {
        await using var client = await StartClientAsync(url: "", voice: "");
        var result = await Speak(client, "Hello.");
        Assert.True(result.IsError == true);
        Assert.Contains("TIMBRE_URL is not set", Text(result), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stopped_server_is_reported_by_url_and_the_next_call_after_it_returns_succeeds()
    {
        // A second server on a port of its own, so it can go away and come back at the same address.
        var port = FreePort();
        var url = $"http://127.0.0.1:{port}/";
        var data = Directory.CreateTempSubdirectory("timbre-mcp-server-").FullName;
        TimbreApp Server()
        {
            var server = new TimbreApp();
            server.UseKestrel(port);
            server.Settings["Timbre:DataDirectory"] = data;
            return server;
        }

        var first = Server();
        await first.EnrolAsync("Ada");
        await using var client = await StartClientAsync(url: url, key: null);
        Assert.True((await Speak(client, "Before the restart.")).IsError != true);

        first.Dispose();
        var down = await Speak(client, "While it is down.");
        Assert.True(down.IsError == true);
        Assert.Contains($"127.0.0.1:{port}", Text(down), StringComparison.Ordinal);

        using var second = Server();
        _ = second.BaseAddress;
        var back = await Speak(client, "After the restart.");
        Assert.True(back.IsError != true, Text(back));
        Directory.Delete(data, recursive: true);
    }

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }

    private static async Task Eventually(Func<bool> condition)
    {
        // Waits for a state the test caused; the bound only stops a broken build from hanging.
        for (var i = 0; i < 400 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        Assert.True(condition());
    }
}
