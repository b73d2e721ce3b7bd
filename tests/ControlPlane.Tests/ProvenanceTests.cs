using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Timbre.ControlPlane.Provenance;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// The provenance mark end to end: every output path's audio, as its client received it, is sent back
/// to POST /v1/provenance/detect, which must find the mark and name the clip in the generation log.
/// </summary>
public sealed class ProvenanceTests : IAsyncLifetime, IDisposable
{
    private const string Key = "provenance-test-key-0123456789";
    private const string Text = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. It is easy to tell the depth of a well.";
    private readonly TimbreApp app = new();

    public async Task InitializeAsync()
    {
        app.Settings["Timbre:Auth:ApiKeys:0"] = Key;
        await app.EnrolAsync("Ada", Key);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => app.Dispose();

    private HttpClient Client() => app.CreateClient(Key);

    private async Task<(HttpStatusCode Status, JsonElement Body)> DetectAsync(byte[] audio, string fileName)
    {
        using var client = Client();
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(audio);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(file, "file", fileName);
        using var response = await client.PostAsync("/v1/provenance/detect", form);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest or HttpStatusCode.RequestEntityTooLarge, body.ToString());
        return (response.StatusCode, body);
    }

    private static void AssertMarked(JsonElement found, string? clipId)
    {
        Assert.True(found.TryGetProperty("detected", out _), found.ToString());
        Assert.True(found.GetProperty("detected").GetBoolean(), found.ToString());
        Assert.True(found.GetProperty("score").GetDouble() >= found.GetProperty("threshold").GetDouble());
        Assert.True(found.GetProperty("payloadValid").GetBoolean(), found.ToString());
        var clip = found.GetProperty("clip");
        Assert.Equal("ada", clip.GetProperty("voice").GetString());
        Assert.Equal("classic", clip.GetProperty("engine").GetString());
        if (clipId is not null)
        {
            Assert.Equal(clipId, clip.GetProperty("id").GetString());
        }
    }

    [Theory]
    [InlineData("wav", "clip.wav")]
    [InlineData("mp3", "clip.mp3")]
    [InlineData("opus", "clip.ogg")]
    [InlineData("flac", "clip.flac")]
    [InlineData("aac", "clip.m4a")]
    public async Task Speech_in_every_format_carries_the_mark_and_names_its_clip(string format, string fileName)
    {
        using var client = Client();
        using var response = await client.PostAsJsonAsync("/v1/speech", new { text = Text, voice = "ada", format });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var clipId = response.Headers.GetValues("Timbre-Clip-Id").Single();
        var audio = await response.Content.ReadAsByteArrayAsync();
        if (format == "aac")
        {
            // An ADTS stream: the upload types take AAC inside M4A, as phones and browsers save it.
            audio = Audio.Remux(audio, "m4a");
        }

        var (status, found) = await DetectAsync(audio, fileName);
        Assert.Equal(HttpStatusCode.OK, status);
        AssertMarked(found, clipId);
    }

    [Fact]
    public async Task Streamed_pcm_and_the_OpenAI_endpoint_and_its_sse_carry_the_mark()
    {
        using var client = Client();
        using var pcm = await client.PostAsJsonAsync("/v1/speech", new { text = Text, voice = "ada", stream = true, format = "pcm" });
        var pcmClip = pcm.Headers.GetValues("Timbre-Clip-Id").Single();
        AssertMarked((await DetectAsync(Audio.Wav16(await pcm.Content.ReadAsByteArrayAsync()), "pcm.wav")).Body, pcmClip);

        using var openAi = await client.PostAsJsonAsync("/v1/audio/speech", new { model = "tts-1", input = Text, voice = "ada", response_format = "wav" });
        AssertMarked((await DetectAsync(await openAi.Content.ReadAsByteArrayAsync(), "openai.wav")).Body, openAi.Headers.GetValues("Timbre-Clip-Id").Single());

        using var sse = await client.PostAsJsonAsync("/v1/audio/speech", new { model = "gpt-4o-mini-tts", input = Text, voice = "ada", response_format = "pcm", stream_format = "sse" });
        var deltas = new List<byte>();
        foreach (var line in (await sse.Content.ReadAsStringAsync()).Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)))
        {
            var data = JsonDocument.Parse(line["data: ".Length..]).RootElement;
            if (data.GetProperty("type").GetString() == "speech.audio.delta")
            {
                deltas.AddRange(Convert.FromBase64String(data.GetProperty("audio").GetString()!));
            }
        }

        AssertMarked((await DetectAsync(Audio.Wav16([.. deltas]), "sse.wav")).Body, sse.Headers.GetValues("Timbre-Clip-Id").Single());
    }

    [Fact]
    public async Task The_SignalR_stream_carries_the_mark_and_the_log_keeps_the_clips_audio_hash()
    {
        await using var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(app.BaseAddress, "/hubs/speech"), o => o.AccessTokenProvider = () => Task.FromResult<string?>(Key))
            .AddMessagePackProtocol().Build();
        await hub.StartAsync();
        var pcm = new List<byte>();
        await foreach (var chunk in hub.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = Text, Voice = "ada" }))
        {
            pcm.AddRange(chunk.Pcm);
        }

        var (_, found) = await DetectAsync(Audio.Wav16([.. pcm]), "hub.wav");
        AssertMarked(found, null);
        var clipId = found.GetProperty("clip").GetProperty("id").GetString()!;
        var record = app.Get<GenerationLog>().FindByTag(app.Get<ProvenanceKey>().TagOf(clipId)).Single();
        // The log keeps the hash of the 16-bit PCM the server sent: exactly the bytes the hub delivered.
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData([.. pcm])), record.AudioSha256);
        Assert.Equal(pcm.Count / 2.0 / 24000, record.Seconds!.Value, 2);
        Assert.StartsWith("key-", record.ApiKey, StringComparison.Ordinal);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Text))), record.TextSha256);
        app.AssertNoErrorsLogged();
    }

    [Fact]
    public async Task A_recording_Timbre_did_not_make_is_not_detected_and_the_key_stays_private()
    {
        var (status, found) = await DetectAsync(Audio.Espeak(Audio.Reference + " " + Audio.Reference), "human.wav");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.False(found.GetProperty("detected").GetBoolean(), found.ToString());
        Assert.True(found.GetProperty("score").GetDouble() < 6);
        Assert.Equal(JsonValueKind.Null, found.GetProperty("clip").ValueKind);
        Assert.NotEmpty(found.GetProperty("windows").EnumerateArray());

        var key = Path.Combine(app.DataDirectory, "provenance.key");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        }

        Assert.Matches("^[0-9a-f]{64}$", File.ReadAllText(key).Trim());
        var secret = File.ReadAllText(key).Trim();
        Assert.DoesNotContain(app.Logs.Lines, l => l.Contains(secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Bad_uploads_are_refused_with_what_to_change_and_leave_nothing_behind()
    {
        using var client = Client();
        using (var json = await client.PostAsJsonAsync("/v1/provenance/detect", new { file = "x" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, json.StatusCode);
            Assert.Contains("multipart/form-data", (await json.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        var cases = new (byte[] Bytes, string Name, string Expect)[]
        {
            ("not audio at all"u8.ToArray(), "notes.txt", "unsupported file type"),
            ("RIFF\x10\0\0\0WAVEfmt "u8.ToArray(), "broken.wav", "truncated"),
            ("MThd not a wave file"u8.ToArray(), "renamed.wav", "not a WAV file"),
            (Encoding.ASCII.GetBytes(new string('x', 4000)), "noise.mp3", "not a readable MP3"),
            (Audio.Wav16(new byte[24000]), "half-second.wav", "at least 3 seconds"),
        };
        foreach (var (bytes, name, expect) in cases)
        {
            var (status, body) = await DetectAsync(bytes, name);
            Assert.Equal(HttpStatusCode.BadRequest, status);
            var detail = body.GetProperty("detail").GetString()!;
            Assert.Contains(expect, detail, StringComparison.Ordinal);
            Assert.Equal("file", body.GetProperty("field").GetString());
            // A file that cannot be read says what to do about it, as well as what is wrong.
            if (expect is "truncated" or "not a WAV file" or "not a readable MP3")
            {
                Assert.Contains("export the recording again, or upload it as one of .wav, .mp3", detail, StringComparison.Ordinal);
            }
        }

        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(Path.Combine(app.DataDirectory, ".staging"), "*", SearchOption.AllDirectories), p => Path.GetFileName(p).StartsWith("detect-", StringComparison.Ordinal));
        app.AssertNoErrorsLogged();
    }
}

/// <summary>The owner turned the mark off: the server says so loudly at start, and its audio carries no mark.</summary>
public sealed class ProvenanceOffTests : IDisposable
{
    private readonly TimbreApp app = new();

    public void Dispose() => app.Dispose();

    [Fact]
    public async Task With_marking_off_the_start_logs_it_as_critical_and_speech_is_not_marked()
    {
        app.Settings["Timbre:Provenance:Enabled"] = "false";
        await app.EnrolAsync("Ada");
        using var client = app.CreateClient();
        using var response = await client.PostAsJsonAsync("/v1/speech", new { text = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. It is easy to tell the depth of a well.", voice = "ada" });
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var wav = await response.Content.ReadAsByteArrayAsync();
        using var form = new MultipartFormDataContent();
        form.Add(new ByteArrayContent(wav), "file", "off.wav");
        using var detect = await client.PostAsync("/v1/provenance/detect", form);
        var found = await detect.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(detect.StatusCode == HttpStatusCode.OK, found.ToString());
        Assert.False(found.GetProperty("detected").GetBoolean(), found.ToString());
        Assert.Contains(app.Logs.Lines, l => l.StartsWith("Critical ", StringComparison.Ordinal) && l.Contains("provenance mark is OFF", StringComparison.Ordinal));
    }
}
