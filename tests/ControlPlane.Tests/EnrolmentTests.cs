using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Timbre.ControlPlane.Tests;

/// <summary>The enrolment pipeline behind POST /v1/voices: quality report, trimming, prompt, reference, transcripts.</summary>
public sealed class EnrolmentTests : IDisposable
{
    private readonly TimbreApp app = new();
    private readonly HttpClient client;

    public EnrolmentTests() => client = app.CreateClient();

    public void Dispose()
    {
        client.Dispose();
        app.Dispose();
    }

    [Fact]
    public async Task A_clean_take_with_its_words_becomes_the_prompt_and_the_report_is_kept_with_the_voice()
    {
        using var form = new MultipartFormDataContent
        {
            { new StringContent("Ada"), "name" },
            { new ByteArrayContent(Audio.Espeak(Audio.Reference)), "files", "take.wav" },
            { new StringContent(Audio.Reference), "transcripts" },
        };
        using var response = await client.PostAsync("/v1/voices", form);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var voice = await response.Content.ReadFromJsonAsync<JsonElement>();

        Assert.Empty(voice.GetProperty("warnings").EnumerateArray());
        var sample = voice.GetProperty("samples")[0];
        Assert.Equal(("user", Audio.Reference), (sample.GetProperty("transcriptSource").GetString(), sample.GetProperty("transcript").GetString()));
        var quality = voice.GetProperty("quality");
        Assert.True(quality.GetProperty("samples")[0].GetProperty("snrDb").GetDouble() > 30);
        var prompt = quality.GetProperty("prompt");
        Assert.Equal(("samples/prompt.wav", Audio.Reference), (prompt.GetProperty("file").GetString(), prompt.GetProperty("transcript").GetString()));
        Assert.InRange(prompt.GetProperty("seconds").GetDouble(), 3, 15.5);

        var folder = Path.Combine(app.DataDirectory, "ada");
        Assert.True(File.Exists(Path.Combine(folder, "samples", "prompt.wav")));
        Assert.True(File.Exists(Path.Combine(folder, "samples", "reference.wav")));
        Assert.Empty(Directory.GetFiles(folder, "unnormalised-*", SearchOption.AllDirectories));

        // The report stays with the voice.
        var fetched = await client.GetFromJsonAsync<JsonElement>("/v1/voices/ada");
        Assert.Equal(quality.GetRawText(), fetched.GetProperty("quality").GetRawText());
    }

    [Fact]
    public async Task Silence_is_trimmed_and_a_missing_transcript_is_recognised_and_called_a_guess()
    {
        var padded = Pad(Audio.Espeak(Audio.Reference), seconds: 6);
        using var form = new MultipartFormDataContent
        {
            { new StringContent("Bea"), "name" },
            { new ByteArrayContent(padded), "files", "quiet-room.wav" },
        };
        using var response = await client.PostAsync("/v1/voices", form);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var voice = await response.Content.ReadFromJsonAsync<JsonElement>();

        var warnings = voice.GetProperty("warnings").EnumerateArray().Select(w => w.GetString()!).ToList();
        Assert.Contains(warnings, w => w.StartsWith("mostly silence", StringComparison.Ordinal) && w.Contains("quiet-room.wav", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.StartsWith("transcript is a guess", StringComparison.Ordinal));
        var sample = voice.GetProperty("samples")[0];
        Assert.Equal("pocketsphinx", sample.GetProperty("transcriptSource").GetString());
        // espeak-ng is hard for pocketsphinx: only that some words were recognised is certain here
        // (PyRuntime's enrolment tests bound the word error rate on flite's clearer voice).
        Assert.True(sample.GetProperty("transcript").GetString()!.Split(' ').Length >= 5, sample.GetProperty("transcript").GetString());
        var report = voice.GetProperty("quality").GetProperty("samples")[0];
        // Twelve seconds of silence were added; the stored sample is the speech with short margins.
        Assert.True(report.GetProperty("originalSeconds").GetDouble() - sample.GetProperty("durationSeconds").GetDouble() > 11);
        var stored = await File.ReadAllBytesAsync(Path.Combine(app.DataDirectory, "bea", "samples", "sample-1.wav"));
        Assert.Equal(sample.GetProperty("durationSeconds").GetDouble(), Wav.Parse(stored).Seconds, 2);
    }

    private static byte[] Pad(byte[] wav, int seconds)
    {
        var source = Path.Combine(Path.GetTempPath(), $"pad-{Guid.NewGuid():n}.wav");
        var target = Path.Combine(Path.GetTempPath(), $"padded-{Guid.NewGuid():n}.wav");
        try
        {
            File.WriteAllBytes(source, wav);
            Audio.Run("sox", source, target, "pad", $"{seconds}", $"{seconds}");
            return File.ReadAllBytes(target);
        }
        finally
        {
            File.Delete(source);
            File.Delete(target);
        }
    }
}
