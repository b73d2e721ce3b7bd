using System.Net;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// Bad uploads, names, ids and speech requests against one server whose library holds the voice "existing":
/// each case checks that the library is byte for byte what it was before, so they need no server of their own.
/// </summary>
public sealed class LibraryInputTests(EnrolledApp fixture) : IClassFixture<EnrolledApp>
{
    private readonly TimbreApp app = fixture.App;
    private readonly HttpClient client = fixture.Client;

    public static TheoryData<string, byte[]> BadFiles() => new()
    {
        { "notes.wav", "this is a text file, not audio"u8.ToArray() },
        { "truncated.wav", Audio.Espeak(Audio.Reference)[..3000] },
        { "huge.wav", WavClaiming4GB() },
        { "voice.exe", Audio.Espeak("Hello") },
        { "silence.wav", Silence(3) },
    };

    private static byte[] WavClaiming4GB()
    {
        var wav = Audio.Espeak("Hello there, this is a short sample.");
        BitConverter.GetBytes(0xFFFFFFF0u).CopyTo(wav, 4);
        BitConverter.GetBytes(0xFFFFFF00u).CopyTo(wav, 40);
        return wav;
    }

    private static byte[] Silence(int seconds)
    {
        return Speech.Pcm.Wav(24000, 1, new byte[seconds * 48000]);
    }

    [Theory]
    [MemberData(nameof(BadFiles))]
    public async Task A_bad_upload_is_a_problem_and_stores_nothing(string fileName, byte[] bytes)
    {
        var before = app.Snapshot();
        var response = await client.PostAsync("/v1/voices", VoiceAndSpeechTests.Upload("Newcomer", (fileName, bytes)));
        await VoiceAndSpeechTests.AssertProblem(response, HttpStatusCode.BadRequest);
        Assert.Equal(before, app.Snapshot());
    }

    [Fact]
    public async Task A_sample_over_sixty_seconds_is_refused_and_stores_nothing()
    {
        var path = Path.Combine(Path.GetTempPath(), $"long-{Guid.NewGuid():n}.wav");
        Audio.Run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", path, "synth", "65", "sine", "180");
        var bytes = await File.ReadAllBytesAsync(path);
        File.Delete(path);
        var before = app.Snapshot();
        var problem = await VoiceAndSpeechTests.AssertProblem(await client.PostAsync("/v1/voices", VoiceAndSpeechTests.Upload("Long", ("long.wav", bytes))), HttpStatusCode.BadRequest);
        Assert.Contains("at most 60 s", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(before, app.Snapshot());
    }

    [Fact]
    public async Task A_file_over_ten_megabytes_is_refused_and_stores_nothing()
    {
        var bytes = Speech.Pcm.Wav(24000, 1, new byte[(10 * 1024 * 1024) + 1 - 44]);
        var before = app.Snapshot();
        var problem = await VoiceAndSpeechTests.AssertProblem(await client.PostAsync("/v1/voices", VoiceAndSpeechTests.Upload("Big", ("big.wav", bytes))), HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("at most 10 MB", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(before, app.Snapshot());
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("..%2f")]
    [InlineData("/etc/passwd")]
    [InlineData("bad\0name")]
    [InlineData("")]
    [InlineData("..")]
    public async Task A_dangerous_voice_name_is_refused_and_stores_nothing(string name)
    {
        var before = app.Snapshot();
        var response = await client.PostAsync("/v1/voices", VoiceAndSpeechTests.Upload(name, ("ref.wav", Audio.Espeak(Audio.Reference))));
        var problem = await VoiceAndSpeechTests.AssertProblem(response, HttpStatusCode.BadRequest);
        Assert.Contains("name", problem.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, app.Snapshot());
        Assert.False(File.Exists("/etc/passwd.wav"));
    }

    [Theory]
    [InlineData("..%2f..%2fetc%2fpasswd", HttpStatusCode.BadRequest)]
    [InlineData("..", HttpStatusCode.NotFound)]
    [InlineData("NOT-A-SLUG", HttpStatusCode.BadRequest)]
    [InlineData("nobody", HttpStatusCode.NotFound)]
    public async Task Voice_ids_never_reach_outside_the_library(string id, HttpStatusCode expected)
    {
        var before = app.Snapshot();
        var get = await client.GetAsync($"/v1/voices/{id}");
        var delete = await client.DeleteAsync($"/v1/voices/{id}");
        Assert.Equal(expected, get.StatusCode);
        Assert.Equal(expected, delete.StatusCode);
        Assert.Equal(before, app.Snapshot());
    }

    [Fact]
    public async Task A_duplicate_name_is_a_conflict_and_keeps_the_first_voice()
    {
        await app.EnrolAsync("Twin");
        var before = app.Snapshot();
        var response = await client.PostAsync("/v1/voices", VoiceAndSpeechTests.Upload("TWIN", ("ref.wav", Audio.Espeak("Another sample of speech for the twin.", "en-gb"))));
        await VoiceAndSpeechTests.AssertProblem(response, HttpStatusCode.Conflict);
        Assert.Equal(before, app.Snapshot());
    }

    public static TheoryData<string, HttpStatusCode, string> BadSpeech() => new()
    {
        { """{"text": "", "voice": "existing"}""", HttpStatusCode.BadRequest, "text is empty" },
        { $$"""{"text": "{{new string('a', 100_000)}}", "voice": "existing"}""", HttpStatusCode.BadRequest, "at most 5000" },
        { """{"text": "Hello.", "voice": "nobody"}""", HttpStatusCode.NotFound, "No voice 'nobody'" },
        { """{"text": "Hello."}""", HttpStatusCode.BadRequest, "voice is required" },
        { """{"text": "Hello.", "voice": "existing", "format": "aiff"}""", HttpStatusCode.BadRequest, "format 'aiff'" },
        { """{"text": "Hello.", "voice": "existing", "speed": 10}""", HttpStatusCode.BadRequest, "speed must be" },
        { """{"text": "Hello.", "voice": "existing", "engine": "nope"}""", HttpStatusCode.BadRequest, "engine 'nope'" },
        { """{"text": "Bonjour.", "voice": "existing", "language": "fr"}""", HttpStatusCode.BadRequest, "English only" },
        { """{"text": "Hello.", "voice": "existing", "engine": "qwen3"}""", HttpStatusCode.BadRequest, "engine 'qwen3' is not available on this server: torch and qwen_tts not installed: run ops/install-gpu. Use one of classic" },
        { """{"text": "Hello.", "voice": """, HttpStatusCode.BadRequest, "JSON body could not be read" },
        { """{"text": 42, "voice": "existing"}""", HttpStatusCode.BadRequest, "text has the wrong type" },
    };

    [Theory]
    [MemberData(nameof(BadSpeech))]
    public async Task Bad_speech_requests_are_problems_that_say_what_to_change(string json, HttpStatusCode expected, string detail)
    {
        var before = app.Snapshot();
        var response = await client.PostAsync("/v1/speech", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var problem = await VoiceAndSpeechTests.AssertProblem(response, expected);
        Assert.Contains(detail, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(before, app.Snapshot());
    }
}

/// <summary>One server with the voice "existing" enrolled, shared by a class's cases (run one after another).</summary>
public sealed class EnrolledApp : IAsyncLifetime
{
    public TimbreApp App { get; } = new();

    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Client = App.CreateClient();
        await App.EnrolAsync("Existing");
    }

    public Task DisposeAsync()
    {
        Client.Dispose();
        App.Dispose();
        return Task.CompletedTask;
    }
}
