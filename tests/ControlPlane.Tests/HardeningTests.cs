using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Timbre.ControlPlane.Observability;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// Careless and hostile input against the real server: huge numbers, broken text, names in every script,
/// guessed keys, overload and malformed requests. None may corrupt anything, get a bare 500, or fill the error log.
/// </summary>
public sealed class HardeningTests
{
    [Fact]
    public async Task Client_mistakes_are_logged_without_stack_traces_and_never_as_errors()
    {
        using var app = new TimbreApp();
        app.Settings["Timbre:Speech:RequestTimeoutSeconds"] = "2";
        await app.EnrolAsync("Ada");
        using var client = app.CreateClient();

        using var malformed = new StringContent("{\"text\": \"hi\", ", Encoding.UTF8, "application/json");
        using (var response = await client.PostAsync("/v1/speech", malformed))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }

        // A timeout in the middle of a streamed body: the body is cut, the log says so at Information.
        using (var response = await client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "/v1/speech") { Content = JsonContent.Create(new { text = Audio.LongText(60), voice = "ada", stream = true }) },
            HttpCompletionOption.ResponseHeadersRead))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => response.Content.CopyToAsync(Stream.Null));
        }

        // A SignalR stream cancelled by its client, and one that runs past its timeout.
        await using var hub = new HubConnectionBuilder().WithUrl(new Uri(app.BaseAddress, "/hubs/speech")).Build();
        await hub.StartAsync();
        using (var cancel = new CancellationTokenSource())
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            {
                await foreach (var _ in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = Audio.LongText(40), Voice = "ada" }, cancel.Token))
                {
                    await cancel.CancelAsync();
                }
            });
        }

        await Assert.ThrowsAsync<Microsoft.AspNetCore.SignalR.HubException>(async () =>
        {
            await foreach (var _ in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = Audio.LongText(60), Voice = "ada" }))
            {
            }
        });

        var metrics = app.Get<TimbreMetrics>();
        await SpeechHubTests.Eventually(() => metrics.StreamsEnded("classic", "timeout") == 2 && metrics.StreamsEnded("classic", "cancelled") == 1);
        app.AssertNoErrorsLogged();
        Assert.DoesNotContain(app.Logs.Lines, l => l.StartsWith("Warning ", StringComparison.Ordinal) && l.Contains("   at ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Voice_names_in_any_script_get_ascii_ids_and_spellings_of_one_name_are_one_voice()
    {
        using var app = new TimbreApp();
        Assert.Equal("cafe", await app.EnrolAsync("Café"));
        var before = app.Snapshot();
        using var client = app.CreateClient();
        // The decomposed spelling (what macOS keyboards often send) and the unaccented one are the same voice.
        foreach (var same in new[] { "Cafe\u0301", "Cafe", "CAFÉ" })
        {
            using var form = new MultipartFormDataContent { { new StringContent(same), "name" }, { new ByteArrayContent(Audio.Espeak(Audio.Reference)), "files", "ref.wav" } };
            using var response = await client.PostAsync("/v1/voices", form);
            Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        }

        Assert.Equal(before, app.Snapshot());
        Assert.Equal("olga", await app.EnrolAsync("Ольга"));
        Assert.Equal("ribenyu", await app.EnrolAsync("日本語"));
        var olga = await client.GetFromJsonAsync<JsonElement>("/v1/voices/olga");
        Assert.Equal("Ольга", olga.GetProperty("name").GetString());
        // Found by name as well as by id, and the decomposed name finds the composed voice.
        using var byName = await client.PostAsJsonAsync("/v1/speech", new { text = "Hello.", voice = "Cafe\u0301" });
        Assert.Equal(HttpStatusCode.OK, byName.StatusCode);
    }

    [Theory]
    [InlineData("Café", "cafe")]
    [InlineData("Cafe\u0301", "cafe")]
    [InlineData("İda", "ida")]
    [InlineData("Ольга", "olga")]
    [InlineData("Ελένη", "eleni")]
    [InlineData("Łukasz Żak", "lukasz-zak")]
    [InlineData("O'Brien (take 2)", "obrien-take-2")]
    [InlineData("मीरा", "mira")]
    public void Slugs_transliterate_every_script_to_url_safe_ids(string name, string id)
    {
        Assert.Null(Voices.VoiceNames.Validate(name));
        Assert.Equal(id, Voices.VoiceNames.Slug(name));
        Assert.True(Voices.VoiceNames.IsValidId(id));
    }

    [Theory]
    [InlineData("../etc")]
    [InlineData("a/b")]
    [InlineData("50%")]
    [InlineData("bell\u0007")]
    [InlineData("😀")]
    public void Names_that_could_escape_or_mean_nothing_are_still_refused(string name) =>
        Assert.NotNull(Voices.VoiceNames.Validate(name));

    [Fact]
    public async Task Wrong_keys_from_one_address_are_limited_and_logged_once_per_window()
    {
        const string key = "hardening-test-key-0123456789abc";
        using var app = new TimbreApp();
        app.Settings["Timbre:Auth:ApiKeys:0"] = key;
        app.Settings["Timbre:Auth:FailedAttemptsPerMinute"] = "3";
        using var right = app.CreateClient(key);
        Assert.Equal(HttpStatusCode.OK, (await right.GetAsync("/v1/voices")).StatusCode);
        using var wrong = app.CreateClient("guessed-key-0000000000000000000");
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await wrong.GetAsync("/v1/voices")).StatusCode);
        }

        for (var i = 0; i < 5; i++)
        {
            using var refused = await wrong.GetAsync("/v1/voices");
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 60);
            Assert.Contains("Too many wrong API keys", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString()!, StringComparison.Ordinal);
        }

        // Once an address is refused its keys are not checked at all, so a lucky guess learns nothing either.
        Assert.Equal(HttpStatusCode.TooManyRequests, (await right.GetAsync("/v1/voices")).StatusCode);
        // Requests without a key are not guesses: they still get their 401.
        using var anonymous = app.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/voices")).StatusCode);
        Assert.Single(app.Logs.Lines, l => l.StartsWith("Warning ", StringComparison.Ordinal) && l.Contains("wrong API keys within a minute", StringComparison.Ordinal));
        Assert.DoesNotContain(app.Logs.Lines, l => l.Contains("guessed-key", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_nul_in_the_path_is_refused_by_kestrel_before_timbre_and_the_server_carries_on()
    {
        // Kestrel rejects a request target that decodes to a NUL while parsing the request line, before any
        // middleware runs, and answers a bare 400 that no application can shape. What Timbre can promise is
        // that it is a 400, that it closes that connection, and that nothing else is affected.
        using var app = new TimbreApp();
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, app.BaseAddress.Port);
        await socket.SendAsync("GET /v1/voices/a%00b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"u8.ToArray());
        var reply = new byte[1024];
        var n = await socket.ReceiveAsync(reply);
        Assert.StartsWith("HTTP/1.1 400 ", Encoding.ASCII.GetString(reply, 0, n), StringComparison.Ordinal);
        using var client = app.CreateClient();
        using var after = await client.GetAsync("/v1/voices/a%01b");
        Assert.Equal(HttpStatusCode.BadRequest, after.StatusCode);
        Assert.Equal("application/problem+json", after.Content.Headers.ContentType?.MediaType);
    }
}

/// <summary>Text no engine can speak, or that is not text at all, sent to one server shared by the cases.</summary>
public sealed class HardeningInputTests(EnrolledApp fixture) : IClassFixture<EnrolledApp>
{
    private readonly TimbreApp app = fixture.App;
    private readonly HttpClient client = fixture.Client;

    private int Refused(string path) =>
        app.Logs.Lines.Count(l => l.StartsWith("Information ", StringComparison.Ordinal) && l.Contains($"Refused POST {path} with 400", StringComparison.Ordinal));

    [Theory]
    [InlineData("/v1/speech")]
    [InlineData("/v1/audio/speech")]
    public async Task Thousands_of_digits_in_a_row_are_spoken_not_an_engine_error(string path)
    {
        var digits = new string('9', 5000);
        object body = path == "/v1/speech"
            ? new { text = digits, voice = "existing", stream = true, format = "pcm" }
            : new { model = "tts-1", input = digits, voice = "existing", response_format = "pcm" };
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var audio = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[48_000];
            var read = 0;
            while (read < buffer.Length && await audio.ReadAsync(buffer.AsMemory(read)) is var n and > 0)
            {
                read += n;
            }

            // Half a second of speech (the first group of nines), not silence.
            Assert.Equal(buffer.Length, read);
            Assert.Contains(Enumerable.Range(0, read / 2), i => Math.Abs(BitConverter.ToInt16(buffer, i * 2)) > 1000);
        }

        Assert.DoesNotContain("timbre_engine_errors_total{", await client.GetStringAsync("/metrics"), StringComparison.Ordinal);
        app.AssertNoErrorsLogged();
    }

    [Theory]
    [InlineData("/v1/speech", "text")]
    [InlineData("/v1/audio/speech", "input")]
    public async Task Text_the_engine_cannot_speak_is_a_400_naming_the_field(string path, string field)
    {
        object body = path == "/v1/speech" ? new { text = "... !!! ???", voice = "existing" } : new { model = "tts-1", input = "... !!! ???", voice = "existing" };
        using var response = await client.PostAsJsonAsync(path, body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(field, problem.GetProperty("field").GetString());
        Assert.Contains("nothing to say", problem.GetProperty("detail").GetString()!, StringComparison.Ordinal);

        using var french = await client.PostAsJsonAsync("/v1/speech", new { text = "Bonjour à tous.", voice = "existing", language = "fr" });
        Assert.Equal(HttpStatusCode.BadRequest, french.StatusCode);
        Assert.Equal("language", (await french.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString());
        Assert.DoesNotContain("timbre_engine_errors_total{", await client.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    public static TheoryData<string, byte[], string> BrokenText() => new()
    {
        // Raw bytes that are not UTF-8 inside the string.
        { "/v1/speech", [.. "{\"voice\": \"existing\", \"text\": \""u8, 0xFF, 0xFE, .. " hello\"}"u8], "text" },
        // A high surrogate escape with no low surrogate after it.
        { "/v1/speech", "{\"voice\": \"existing\", \"text\": \"\\ud800 hello\"}"u8.ToArray(), "text" },
        { "/v1/audio/speech", "{\"model\": \"tts-1\", \"voice\": \"existing\", \"input\": \"hello \\udc00\"}"u8.ToArray(), "input" },
    };

    [Theory]
    [MemberData(nameof(BrokenText))]
    public async Task Text_that_is_not_valid_unicode_gets_a_problem_saying_so(string path, byte[] body, string field)
    {
        var refusedBefore = Refused(path);
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var response = await client.PostAsync(path, content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(field, problem.GetProperty("field").GetString());
        Assert.Contains("not valid text", problem.GetProperty("detail").GetString()!, StringComparison.Ordinal);
        app.AssertNoErrorsLogged();
        Assert.Equal(refusedBefore + 1, Refused(path));
    }
}

/// <summary>
/// Retry-After against the time the requests ahead really take: both are measured on the same server, so the
/// case runs alone (<see cref="TimingCollection"/>). Beside other classes, its primer request ran under a load
/// that had gone by the time the requests it estimated ran.
/// </summary>
[Collection(TimingCollection.Name)]
public sealed class RetryAfterTests
{
    [Fact]
    public async Task Retry_After_is_within_twice_the_time_a_retry_would_start_at_once()
    {
        using var app = new TimbreApp();
        app.Settings["Timbre:Speech:Concurrency:classic"] = "1";
        app.Settings["Timbre:Speech:QueueLength"] = "1";
        await app.EnrolAsync("Ada");
        using var client = app.CreateClient();
        var text = Audio.LongText(12);
        // One request measures the service time the estimate works from.
        using (var primer = await client.PostAsJsonAsync("/v1/speech", new { text, voice = "ada" }))
        {
            Assert.Equal(HttpStatusCode.OK, primer.StatusCode);
        }

        var scheduler = app.Get<SpeechScheduler>();
        var running = client.PostAsJsonAsync("/v1/speech", new { text, voice = "ada" });
        await SpeechHubTests.Eventually(() => scheduler.RunningOn("classic") == 1);
        var queued = client.PostAsJsonAsync("/v1/speech", new { text, voice = "ada" });
        await SpeechHubTests.Eventually(() => scheduler.Waiting("classic") == 1);
        using var refused = await client.PostAsJsonAsync("/v1/speech", new { text, voice = "ada" });
        var clock = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        var retryAfter = refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds;

        // A retry starts at once when both requests ahead of it are done.
        (await running).Dispose();
        (await queued).Dispose();
        var actual = clock.Elapsed.TotalSeconds;
        Assert.True(actual > 1, $"the requests ahead took only {actual:0.00} s: the test needs longer texts to mean anything");
        Assert.InRange(retryAfter, actual / 2, actual * 2);
    }
}
