using System.Text.Json;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Security;

namespace Timbre.ControlPlane.Speech;

/// <summary>What the HTTP speech endpoints share: error mapping and writing audio as it is made.</summary>
public static class SpeechHttp
{
    public static IResult Problem(SpeechProblem problem, bool openAi) =>
        Problems.Create(problem.Status, problem.Detail, problem.Field, openAi);

    /// <summary>Starts synthesis and maps every refusal to its problem details; null result means started.</summary>
    public static async Task<(Synthesizer.SpeechStream? Stream, IResult? Error)> StartAsync(
        Synthesizer synthesizer, SpeechJob job, HttpContext http, SpeechFields fields, bool openAi)
    {
        try
        {
            var stream = await synthesizer.StartAsync(job, ApiKeys.ClientOf(http.User), http.Abort, http.RequestAborted);
            if (!job.ForNode)
            {
                // The generation log's id for this clip: what POST /v1/provenance/detect answers for it later.
                http.Response.Headers["Timbre-Clip-Id"] = stream.ClipId;
            }

            return (stream, null);
        }
        catch (Exception e) when (ProblemOf(e, fields, openAi) is { } problem)
        {
            return (null, problem);
        }
    }

    /// <summary>
    /// Runs <paramref name="deliver"/> (which reads <paramref name="stream"/> and writes the response) and
    /// disposes the stream. A failure before the response starts is a problem detail; after it, the
    /// connection is cut, so the client sees a body that ended early instead of a complete-looking one.
    /// </summary>
    public static async Task<IResult> DeliverAsync(HttpContext http, Synthesizer.SpeechStream stream, SpeechFields fields, bool openAi, Func<Task<IResult>> deliver)
    {
        await using (stream)
        {
            try
            {
                return await deliver();
            }
            catch (Exception e) when (!http.Response.HasStarted && ProblemOf(e, fields, openAi) is { } problem)
            {
                return problem;
            }
            catch (Exception e) when (e is SpeechRejectedException or EngineFailedException or OperationCanceledException or IOException)
            {
                // Timeouts, cut-off clients and hang-ups are logged by the stream as it ends, engine faults by
                // the engine host; none is a fault of this request's handling.
                http.Abort();
                return TypedResults.Empty;
            }
        }
    }

    /// <summary>The problem details for a refusal or failure of speech; null for anything else.</summary>
    private static IResult? ProblemOf(Exception e, SpeechFields fields, bool openAi)
    {
        switch (e)
        {
            case SpeechRejectedException r:
                var status = r.Reason switch
                {
                    RejectionReason.Draining => StatusCodes.Status503ServiceUnavailable,
                    RejectionReason.Timeout => StatusCodes.Status504GatewayTimeout,
                    _ => StatusCodes.Status429TooManyRequests,
                };
                var problem = Problems.Create(status, r.Message, openAi: openAi);
                return r.RetryAfter is { } retry ? new RetryAfterResult(problem, retry) : problem;
            case EngineInputException i:
                return Problems.Create(StatusCodes.Status400BadRequest, i.Message, fields.Of(i.Field), openAi);
            case EngineUnavailableException u:
                return Problems.Create(StatusCodes.Status503ServiceUnavailable, u.Message, openAi: openAi);
            case EngineFailedException f:
                return Problems.Create(StatusCodes.Status500InternalServerError, f.Message, openAi: openAi);
            default:
                return null;
        }
    }

    /// <summary>Writes encoded audio to the response body as each piece is ready.</summary>
    public static async Task WriteAudioAsync(HttpResponse response, IAsyncEnumerable<ReadOnlyMemory<byte>> pieces, string format, int sampleRate, CancellationToken ct)
    {
        response.ContentType = AudioEncoder.ContentType(format);
        response.Headers["X-Sample-Rate"] = sampleRate.ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.Headers.CacheControl = "no-store";
        await foreach (var piece in pieces.WithCancellation(ct))
        {
            await response.Body.WriteAsync(piece, ct);
            await response.Body.FlushAsync(ct);
        }
    }

    /// <summary>OpenAI's server-sent events: speech.audio.delta with base64 audio, then speech.audio.done.</summary>
    public static async Task WriteEventsAsync(HttpResponse response, IAsyncEnumerable<ReadOnlyMemory<byte>> pieces, int inputCharacters, CancellationToken ct)
    {
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-store";
        await foreach (var piece in pieces.WithCancellation(ct))
        {
            await WriteEventAsync(response, new { type = "speech.audio.delta", audio = Convert.ToBase64String(piece.Span) }, ct);
        }

        // Timbre has no tokens; characters stand in so clients that read usage get a number.
        await WriteEventAsync(response, new
        {
            type = "speech.audio.done",
            usage = new { input_tokens = inputCharacters, output_tokens = 0, total_tokens = inputCharacters },
        }, ct);
    }

    private static async Task WriteEventAsync(HttpResponse response, object payload, CancellationToken ct)
    {
        await response.WriteAsync("data: ", ct);
        await response.WriteAsync(JsonSerializer.Serialize(payload), ct);
        await response.WriteAsync("\n\n", ct);
        await response.Body.FlushAsync(ct);
    }
}
