using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Timbre.ControlPlane.Engines;

namespace Timbre.ControlPlane.Tests;

public sealed class VoiceAndSpeechTests : IDisposable
{
    private readonly TimbreApp app = new();
    private readonly HttpClient client;

    public VoiceAndSpeechTests() => client = app.CreateClient();

    public void Dispose()
    {
        client.Dispose();
        app.Dispose();
    }

    internal static MultipartFormDataContent Upload(string name, params (string FileName, byte[] Bytes)[] files)
    {
        var form = new MultipartFormDataContent { { new StringContent(name), "name" } };
        foreach (var (fileName, bytes) in files)
        {
            var content = new ByteArrayContent(bytes);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(content, "files", fileName);
        }

        return form;
    }

    private async Task<JsonElement> EnrolAsync(string name, string espeakVoice = "en-us+f3")
    {
        var form = Upload(name, ("ref.wav", Audio.Espeak(Audio.Reference, espeakVoice)));
        form.Add(new StringContent(Audio.Reference), "transcripts");
        var response = await client.PostAsync("/v1/voices", form);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private Task<HttpResponseMessage> SpeakAsync(object body) => client.PostAsJsonAsync("/v1/speech", body);

    [Fact]
    public async Task An_enrolled_voice_speaks_wav_that_grows_with_the_text_at_the_references_pitch()
    {
        var reference = Audio.Espeak(Audio.Reference);
        var created = await EnrolAsync("Ada Lovelace");
        Assert.Equal("ada-lovelace", created.GetProperty("id").GetString());
        Assert.True(created.GetProperty("totalSeconds").GetDouble() > 3);

        var shortResponse = await SpeakAsync(new { text = "Hello there.", voice = "ada-lovelace" });
        var longResponse = await SpeakAsync(new { text = "Hello there. This sentence is a great deal longer, and there is a third one after it as well.", voice = "Ada Lovelace" });
        Assert.Equal(HttpStatusCode.OK, shortResponse.StatusCode);
        Assert.Equal("audio/wav", shortResponse.Content.Headers.ContentType?.MediaType);
        var shortWav = await shortResponse.Content.ReadAsByteArrayAsync();
        var longWav = await longResponse.Content.ReadAsByteArrayAsync();
        var s = Wav.Parse(shortWav);
        var l = Wav.Parse(longWav);
        Assert.Equal((24000, 1, 16), (s.SampleRate, s.Channels, s.BitsPerSample));
        Assert.InRange(s.Seconds, 0.4, 3);
        Assert.True(l.Seconds > 3 * s.Seconds, $"long text {l.Seconds:0.00} s vs short {s.Seconds:0.00} s");

        var refPitch = Audio.MedianPitch(reference);
        var outPitch = Audio.MedianPitch(longWav);
        Assert.InRange(outPitch, refPitch * 0.9, refPitch * 1.1);
    }

    [Theory]
    [InlineData("mp3", "audio/mpeg", "mp3")]
    [InlineData("opus", "audio/ogg", "opus")]
    [InlineData("flac", "audio/flac", "flac")]
    public async Task Native_speech_streams_compressed_formats_through_ffmpeg(string format, string contentType, string codec)
    {
        await EnrolAsync("Ada");
        var wav = Wav.Parse(await (await SpeakAsync(new { text = "Hello there. A second sentence.", voice = "ada" })).Content.ReadAsByteArrayAsync());
        using var response = await SpeakAsync(new { text = "Hello there. A second sentence.", voice = "ada", format, stream = true });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(contentType, response.Content.Headers.ContentType?.MediaType);
        var (actualCodec, seconds) = OpenAiTests.Probe(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(codec, actualCodec);
        Assert.InRange(seconds, wav.Seconds - 0.05, wav.Seconds + 0.15);
    }

    [Fact]
    public async Task Voices_are_listed_fetched_and_deleted()
    {
        await EnrolAsync("Bob", "en-gb");
        var list = await client.GetFromJsonAsync<JsonElement>("/v1/voices");
        Assert.Equal(["bob"], list.EnumerateArray().Select(v => v.GetProperty("id").GetString()));
        var one = await client.GetFromJsonAsync<JsonElement>("/v1/voices/bob");
        Assert.Equal("Bob", one.GetProperty("name").GetString());
        Assert.True(File.Exists(Path.Combine(app.DataDirectory, "bob", "samples", "original-1.wav")));
        Assert.True(File.Exists(Path.Combine(app.DataDirectory, "bob", "samples", "sample-1.wav")));

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/v1/voices/bob")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/voices/bob")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.DeleteAsync("/v1/voices/bob")).StatusCode);
        Assert.False(Directory.Exists(Path.Combine(app.DataDirectory, "bob")));
    }

    [Fact]
    public async Task Streaming_sends_audio_before_synthesis_ends()
    {
        await EnrolAsync("Streamer");
        var engines = app.Services.GetRequiredService<EngineHost>();
        var text = string.Join(" ", Enumerable.Range(1, 30).Select(i => $"This is sentence number {i} of a long text."));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/speech") { Content = JsonContent.Create(new { text, voice = "streamer", stream = true }) };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync();
        var first = new byte[44 + 4800];
        await body.ReadExactlyAsync(first);
        // Audio is in hand while the engine's generator is still open: synthesis has not ended.
        Assert.Equal(1, engines.ActiveStreams);
        var header = Wav.Parse(first, streamed: true);
        Assert.Equal(24000, header.SampleRate);

        using var rest = new MemoryStream();
        await body.CopyToAsync(rest);
        var seconds = (first.Length - 44 + rest.Length) / 48000.0;
        Assert.True(seconds > 30, $"only {seconds:0.0} s of audio for 30 sentences");
        Assert.Equal(0, engines.ActiveStreams);
    }

    [Theory]
    [InlineData("mp3", "libmp3lame")]
    [InlineData("flac", "flac")]
    [InlineData("ogg", "libvorbis")]
    [InlineData("m4a", "aac")]
    public async Task Compressed_uploads_are_decoded_to_24kHz_mono_wav_and_the_original_kept(string extension, string codec)
    {
        var wav = Path.Combine(app.DataDirectory, "..", $"in-{Guid.NewGuid():n}.wav");
        var encoded = Path.ChangeExtension(wav, extension);
        await File.WriteAllBytesAsync(wav, Audio.Espeak(Audio.Reference));
        Audio.Run("ffmpeg", "-v", "error", "-i", wav, "-ac", "2", "-ar", "44100", "-c:a", codec, encoded);
        var bytes = await File.ReadAllBytesAsync(encoded);
        File.Delete(wav);
        File.Delete(encoded);

        var response = await client.PostAsync("/v1/voices", Upload("Coded", ($"me.{extension}", bytes)));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var folder = Path.Combine(app.DataDirectory, "coded", "samples");
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(folder, $"original-1.{extension}")));
        var stored = Wav.Parse(await File.ReadAllBytesAsync(Path.Combine(folder, "sample-1.wav")));
        Assert.Equal((24000, 1, 16), (stored.SampleRate, stored.Channels, stored.BitsPerSample));
        Assert.InRange(stored.Seconds, 5, 12);
    }

    [Fact]
    public async Task A_failed_engine_load_is_reported_again_not_cached_as_a_crash()
    {
        await EnrolAsync("Existing");
        for (var i = 0; i < 2; i++)
        {
            var response = await SpeakAsync(new { text = "Hello.", voice = "existing", engine = "xtts" });
            var problem = await AssertProblem(response, HttpStatusCode.BadRequest);
            Assert.Contains("engine 'xtts' is not available", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.OK, (await SpeakAsync(new { text = "Hello.", voice = "existing" })).StatusCode);
    }

    [Fact]
    public async Task Health_and_readiness_answer()
    {
        var health = await client.GetFromJsonAsync<JsonElement>("/health");
        var ready = await client.GetFromJsonAsync<JsonElement>("/ready");
        Assert.Equal("healthy", health.GetProperty("status").GetString());
        Assert.Equal("classic", ready.GetProperty("engine").GetString());
    }

    internal static async Task<JsonElement> AssertProblem(HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"expected {expected}, got {response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal((int)expected, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
        return problem;
    }
}

public sealed class StartupValidationTests
{
    [Fact]
    public void An_unknown_default_engine_stops_start_up_with_the_key_to_change()
    {
        using var app = new TimbreApp();
        app.Settings["Timbre:Engine:Default"] = "nope";
        var ex = Assert.ThrowsAny<Exception>(() => app.CreateClient());
        Assert.Contains("Timbre:Engine:Default is 'nope'", ex.ToString(), StringComparison.Ordinal);
    }
}
