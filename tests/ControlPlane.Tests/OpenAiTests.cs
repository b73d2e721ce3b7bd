using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using OpenAI;
using OpenAI.Audio;
using OpenAI.Models;

namespace Timbre.ControlPlane.Tests;

/// <summary>/v1/audio/speech and friends through the official OpenAI .NET SDK, against Kestrel on loopback.</summary>
public sealed class OpenAiTests : IAsyncLifetime, IDisposable
{
    private const string Key = "openai-test-key-0123456789abcdef";
    private const string Text = "Hello there. This is Timbre speaking through an OpenAI client.";
    private readonly TimbreApp app = new();

    public async Task InitializeAsync()
    {
        app.Settings["Timbre:Auth:ApiKeys:0"] = Key;
        await app.EnrolAsync("Ada", Key);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => app.Dispose();

    private OpenAIClientOptions Options => new() { Endpoint = new Uri(app.BaseAddress, "/v1") };

    private AudioClient Audio(string model = "tts-1", string key = Key) => new(model, new ApiKeyCredential(key), Options);

    [Fact]
    public async Task The_SDK_gets_wav_in_the_voice_it_named()
    {
        var result = await Audio().GenerateSpeechAsync(Text, new GeneratedSpeechVoice("ada"), new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Wav });
        var wav = Wav.Parse(result.Value.ToArray(), streamed: true);
        Assert.Equal((24000, 1, 16), (wav.SampleRate, wav.Channels, wav.BitsPerSample));
        Assert.InRange(wav.Seconds, 2, 10);
    }

    [Theory]
    [InlineData("mp3", "mp3")]
    [InlineData("opus", "opus")]
    [InlineData("flac", "flac")]
    [InlineData("aac", "aac")]
    public async Task Every_compressed_format_decodes_to_the_same_duration_as_wav(string format, string codec)
    {
        var client = Audio();
        var wav = Wav.Parse((await client.GenerateSpeechAsync(Text, new GeneratedSpeechVoice("ada"), new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Wav })).Value.ToArray(), streamed: true);
        var encoded = (await client.GenerateSpeechAsync(Text, new GeneratedSpeechVoice("ada"), new SpeechGenerationOptions { ResponseFormat = new GeneratedSpeechFormat(format) })).Value.ToArray();
        var (actualCodec, seconds) = Probe(encoded);
        Assert.Equal(codec, actualCodec);
        // Encoders add a frame or two of padding.
        Assert.InRange(seconds, wav.Seconds - 0.05, wav.Seconds + 0.15);
    }

    [Fact]
    public async Task Pcm_is_raw_16_bit_mono_at_24_kHz_and_speed_shortens_it()
    {
        var client = Audio();
        var normal = (await client.GenerateSpeechAsync(Text, new GeneratedSpeechVoice("ada"), new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Pcm })).Value.ToArray();
        var fast = (await client.GenerateSpeechAsync(Text, new GeneratedSpeechVoice("ada"), new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Pcm, SpeedRatio = 2f })).Value.ToArray();
        Assert.Equal(0, normal.Length % 2);
        Assert.InRange(fast.Length, normal.Length * 0.4, normal.Length * 0.65);
    }

    // The SDK marks its speech streaming API as evaluation-only; it is the client OpenAI users have.
#pragma warning disable OPENAI001
    [Fact]
    public async Task Streaming_with_sse_delivers_base64_deltas_then_done()
    {
        var chunks = new List<byte[]>();
        var done = 0;
        // gpt-4o-mini-tts is the OpenAI model name the SDK allows to stream; Timbre serves it with the default engine.
        await foreach (var update in await Audio("gpt-4o-mini-tts").GenerateSpeechStreamingAsync(Text, new GeneratedSpeechVoice("ada"), new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Pcm }))
        {
            if (update is StreamingSpeechAudioDeltaUpdate delta)
            {
                chunks.Add(delta.AudioBytes.ToArray());
            }
            else if (update is StreamingSpeechAudioDoneUpdate)
            {
                done++;
            }
        }

        Assert.Equal(1, done);
        Assert.True(chunks.Count > 1, "a multi-sentence text arrives in several deltas");
        var pcm = chunks.SelectMany(c => c).ToArray();
        var whole = (await Audio().GenerateSpeechAsync(Text, new GeneratedSpeechVoice("ada"), new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Pcm })).Value.ToArray();
        Assert.Equal(whole.Length, pcm.Length);
    }
#pragma warning restore OPENAI001

    [Fact]
    public async Task Models_list_the_engines_and_openai_names()
    {
        var models = (await new OpenAIModelClient(new ApiKeyCredential(Key), Options).GetModelsAsync()).Value;
        var ids = models.Select(m => m.Id).ToList();
        Assert.Contains("classic", ids);
        Assert.Contains("tts-1", ids);
        Assert.Contains("gpt-4o-mini-tts", ids);
    }

    [Fact]
    public async Task Voices_are_listed_for_openai_clients()
    {
        using var http = app.CreateClient(Key);
        var voices = await http.GetFromJsonAsync<JsonElement>("/v1/audio/voices");
        Assert.Equal("ada", voices.GetProperty("voices")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task Errors_reach_the_SDK_with_status_and_a_message_naming_the_field()
    {
        var unknownVoice = await Assert.ThrowsAsync<ClientResultException>(() => Audio().GenerateSpeechAsync(Text, GeneratedSpeechVoice.Alloy));
        Assert.Equal(400, unknownVoice.Status);
        Assert.Contains("No voice 'alloy'", unknownVoice.Message, StringComparison.Ordinal);

        var unknownModel = await Assert.ThrowsAsync<ClientResultException>(() => Audio("whisper-9").GenerateSpeechAsync(Text, new GeneratedSpeechVoice("ada")));
        Assert.Equal(400, unknownModel.Status);
        Assert.Contains("model 'whisper-9'", unknownModel.Message, StringComparison.Ordinal);

        var wrongKey = await Assert.ThrowsAsync<ClientResultException>(() => Audio(key: "not-the-key-0123456789abcdef").GenerateSpeechAsync(Text, new GeneratedSpeechVoice("ada")));
        Assert.Equal(401, wrongKey.Status);
    }

    [Fact]
    public async Task A_configured_default_voice_answers_openai_voice_names()
    {
        app.Get<Microsoft.Extensions.Options.IOptions<Hosting.TimbreOptions>>().Value.Speech.DefaultVoice = "ada";
        var result = await Audio().GenerateSpeechAsync(Text, GeneratedSpeechVoice.Alloy, new SpeechGenerationOptions { ResponseFormat = GeneratedSpeechFormat.Wav });
        Assert.True(Wav.Parse(result.Value.ToArray(), streamed: true).Seconds > 2);
    }

    [Theory]
    [InlineData("{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"ada\",\"speed\":\"fast\"}", "speed")]
    [InlineData("{\"model\":\"tts-1\",\"input\":42,\"voice\":\"ada\"}", "input")]
    [InlineData("{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"ada\",\"response_format\":\"ogg\"}", "response_format")]
    [InlineData("{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"ada\",\"stream_format\":\"ws\"}", "stream_format")]
    [InlineData("{\"model\":\"tts-1\",\"input\":\"\",\"voice\":\"ada\"}", "input")]
    [InlineData("{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"ada\",\"speed\":9}", "speed")]
    [InlineData("{\"model\":\"tts-1\",\"input\":\"Hi.\"", null)]
    public async Task Wrong_types_and_values_are_400s_that_name_the_field(string body, string? field)
    {
        using var http = app.CreateClient(Key);
        using var response = await http.PostAsync("/v1/audio/speech", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        var detail = problem.GetProperty("detail").GetString()!;
        if (field is not null)
        {
            Assert.Equal(field, problem.GetProperty("field").GetString());
            Assert.Contains(field, detail, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains("JSON", detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Unknown_fields_are_ignored()
    {
        using var http = app.CreateClient(Key);
        using var response = await http.PostAsync("/v1/audio/speech", new StringContent(
            "{\"model\":\"tts-1\",\"input\":\"Hi.\",\"voice\":\"ada\",\"response_format\":\"wav\",\"temperature\":0.3,\"extra\":{\"a\":1}}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("audio/wav", response.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>Codec name and duration of encoded audio, as ffprobe reads them after decoding every packet.</summary>
    internal static (string Codec, double Seconds) Probe(byte[] encoded)
    {
        var path = Path.Combine(Path.GetTempPath(), $"probe-{Guid.NewGuid():n}");
        File.WriteAllBytes(path, encoded);
        try
        {
            var codec = Timbre.ControlPlane.Tests.Audio.Run("ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path).Trim();
            // Decoding to raw PCM counts the real samples; container durations of streamed files are estimates.
            var pcm = Path.Combine(Path.GetTempPath(), $"probe-{Guid.NewGuid():n}.raw");
            Timbre.ControlPlane.Tests.Audio.Run("ffmpeg", "-v", "error", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "24000", pcm);
            var seconds = new FileInfo(pcm).Length / 2 / 24000.0;
            File.Delete(pcm);
            return (codec, seconds);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
