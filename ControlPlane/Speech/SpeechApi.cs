using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Speech;

/// <summary>POST /v1/speech: native synthesis, whole or streamed as it is generated.</summary>
public static class SpeechApi
{
    public static IEndpointRouteBuilder MapNativeSpeech(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/speech", Speak)
            .WithTags("Speech")
            .WithSummary("Speak text in an enrolled voice")
            .WithDescription("Returns the whole clip, or with stream=true a chunked body that starts with the first sentence. Formats: wav, pcm (16-bit mono), mp3, opus, flac, aac.")
            .Accepts<SpeechBody>("application/json")
            .Produces(StatusCodes.Status200OK, contentType: "audio/wav")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status504GatewayTimeout);
        return app;
    }

    public static async Task<IResult> Speak(SpeechBody? body, HttpContext http, Synthesizer synthesizer, AudioEncoder encoder, CancellationToken ct)
    {
        if (body is null)
        {
            return Problems.BadRequest("Send a JSON body such as {\"text\": \"Hello\", \"voice\": \"ada\"}.");
        }

        var (job, problem) = synthesizer.Check(new SpeechInput(body.Text, body.Voice, body.Language, body.Engine, body.Instructions, body.Speed), SpeechFields.Native);
        if (problem is not null)
        {
            return SpeechHttp.Problem(problem, openAi: false);
        }

        var format = (body.Format ?? "wav").ToLowerInvariant();
        if (!AudioEncoder.Formats.Contains(format))
        {
            return Problems.BadRequest($"format '{body.Format}' is not supported; use one of {string.Join(", ", AudioEncoder.Formats)}.", "format");
        }

        var (stream, error) = await SpeechHttp.StartAsync(synthesizer, job!, http, SpeechFields.Native, openAi: false);
        if (error is not null)
        {
            return error;
        }

        return await SpeechHttp.DeliverAsync(http, stream!, SpeechFields.Native, openAi: false, async () =>
        {
            var audio = stream!.ReadPcmAsync(ct);
            if (body.Stream != true)
            {
                var bytes = await encoder.EncodeWholeAsync(audio, stream.SampleRate, format, ct);
                return TypedResults.File(bytes, AudioEncoder.ContentType(format));
            }

            await SpeechHttp.WriteAudioAsync(http.Response, encoder.EncodeAsync(audio, stream.SampleRate, format, ct), format, stream.SampleRate, ct);
            return TypedResults.Empty;
        });
    }
}

/// <summary>The body of POST /v1/speech.</summary>
/// <param name="Text">The words to speak (at most Timbre:Limits:MaxTextLength characters).</param>
/// <param name="Voice">A voice id or name from GET /v1/voices.</param>
/// <param name="Language">ISO code; defaults to the voice's language.</param>
/// <param name="Format">wav (default), pcm, mp3, opus, flac or aac.</param>
/// <param name="Stream">true: a chunked body that starts with the first sentence.</param>
/// <param name="Engine">classic, qwen3 or xtts; defaults to Timbre:Engine:Default.</param>
/// <param name="Instructions">Style instructions for engines that take them.</param>
/// <param name="Speed">0.25 to 4.0.</param>
public sealed record SpeechBody(
    string? Text,
    string? Voice,
    string? Language,
    string? Format,
    bool? Stream,
    string? Engine,
    string? Instructions,
    double? Speed);
