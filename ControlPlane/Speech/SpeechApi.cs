using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Voices;

namespace Timbre.ControlPlane.Speech;

/// <summary>POST /v1/speech: native synthesis, whole or streamed as it is generated.</summary>
public static class SpeechApi
{
    private static readonly string[] Formats = ["wav", "pcm"];

    public static IEndpointRouteBuilder MapSpeech(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/speech", Speak).WithTags("Speech");
        return app;
    }

    public static async Task<IResult> Speak(
        SpeechBody? body, HttpContext http, VoiceLibrary voices, EngineHost engines, IOptions<TimbreOptions> options, CancellationToken ct)
    {
        if (body is null)
        {
            return Problems.BadRequest("Send a JSON body such as {\"text\": \"Hello\", \"voice\": \"ada\"}.");
        }

        var maxText = options.Value.Limits.MaxTextLength;
        if (string.IsNullOrWhiteSpace(body.Text))
        {
            return Problems.BadRequest("text is empty: give the words to speak.", "text");
        }

        if (body.Text.Length > maxText)
        {
            return Problems.BadRequest($"text is {body.Text.Length} characters; at most {maxText} are accepted per request. Split it into several requests.", "text");
        }

        if (string.IsNullOrWhiteSpace(body.Voice))
        {
            return Problems.BadRequest("voice is required: give a voice id or name from GET /v1/voices.", "voice");
        }

        var format = (body.Format ?? "wav").ToLowerInvariant();
        if (!Formats.Contains(format))
        {
            return Problems.BadRequest($"format '{body.Format}' is not supported here; use {string.Join(" or ", Formats)}.", "format");
        }

        if (body.Speed is { } speed && (speed < 0.25 || speed > 4.0 || double.IsNaN(speed)))
        {
            return Problems.BadRequest($"speed must be between 0.25 and 4.0, got {speed}.", "speed");
        }

        var engine = body.Engine ?? engines.DefaultEngine;
        if (!EngineOptions.Known.Contains(engine))
        {
            return Problems.BadRequest($"engine '{engine}' does not exist; use one of {string.Join(", ", EngineOptions.Known)}.", "engine");
        }

        if (voices.Find(body.Voice) is not { } voice)
        {
            return Problems.NotFound($"No voice '{body.Voice}'. GET /v1/voices lists the voices; POST /v1/voices enrols one.");
        }

        var request = new EngineSpeechRequest(body.Text, body.Language ?? voice.Language, body.Speed ?? 1.0, body.Instructions);
        try
        {
            var info = await engines.LoadAsync(engine, ct);
            var chunks = engines.StreamAsync(engine, voices.FolderOf(voice.Id)!, voices.EngineSamples(voice), request, ct);
            await using var e = chunks.GetAsyncEnumerator(ct);
            // The first chunk is awaited before any byte is sent, so a request the engine refuses
            // still gets a proper 400 instead of a broken audio stream.
            var first = await e.MoveNextAsync() ? e.Current : [];
            return body.Stream == true
                ? await StreamAsync(http, info.SampleRate, format, first, e, ct)
                : await WholeAsync(info.SampleRate, format, first, e);
        }
        catch (EngineInputException ex)
        {
            return Problems.BadRequest(ex.Message);
        }
        catch (EngineUnavailableException ex)
        {
            return Problems.Unavailable(ex.Message);
        }
    }

    private static async Task<IResult> WholeAsync(int rate, string format, float[] first, IAsyncEnumerator<float[]> rest)
    {
        using var pcm = new MemoryStream();
        pcm.Write(Pcm.ToInt16(first));
        while (await rest.MoveNextAsync())
        {
            pcm.Write(Pcm.ToInt16(rest.Current));
        }

        if (format == "pcm")
        {
            return TypedResults.File(pcm.ToArray(), "audio/pcm");
        }

        var wav = new byte[44 + pcm.Length];
        Pcm.WavHeader(rate, 1, (uint)pcm.Length).CopyTo(wav, 0);
        pcm.GetBuffer().AsSpan(0, (int)pcm.Length).CopyTo(wav.AsSpan(44));
        return TypedResults.File(wav, "audio/wav");
    }

    private static async Task<IResult> StreamAsync(HttpContext http, int rate, string format, float[] first, IAsyncEnumerator<float[]> rest, CancellationToken ct)
    {
        var response = http.Response;
        response.ContentType = format == "wav" ? "audio/wav" : "audio/pcm";
        response.Headers["X-Sample-Rate"] = rate.ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.Headers.CacheControl = "no-store";
        if (format == "wav")
        {
            await response.Body.WriteAsync(Pcm.WavHeader(rate, 1, Pcm.UnknownLength), ct);
        }

        await response.Body.WriteAsync(Pcm.ToInt16(first), ct);
        await response.Body.FlushAsync(ct);
        while (await rest.MoveNextAsync())
        {
            await response.Body.WriteAsync(Pcm.ToInt16(rest.Current), ct);
            await response.Body.FlushAsync(ct);
        }

        return TypedResults.Empty;
    }
}

/// <summary>The body of POST /v1/speech.</summary>
public sealed record SpeechBody(
    string? Text,
    string? Voice,
    string? Language,
    string? Format,
    bool? Stream,
    string? Engine,
    string? Instructions,
    double? Speed);
