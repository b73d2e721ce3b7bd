using System.Security.Claims;
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
        Synthesizer synthesizer, SpeechJob job, ClaimsPrincipal user, bool openAi, CancellationToken ct)
    {
        try
        {
            return (await synthesizer.StartAsync(job, ApiKeys.ClientOf(user), ct), null);
        }
        catch (SpeechRejectedException e)
        {
            var status = e.Reason switch
            {
                RejectionReason.Draining => StatusCodes.Status503ServiceUnavailable,
                RejectionReason.Timeout => StatusCodes.Status504GatewayTimeout,
                _ => StatusCodes.Status429TooManyRequests,
            };
            var problem = Problems.Create(status, e.Message, openAi: openAi);
            return (null, e.RetryAfter is { } retry ? new RetryAfterResult(problem, retry) : problem);
        }
        catch (EngineInputException e)
        {
            return (null, Problems.Create(StatusCodes.Status400BadRequest, e.Message, openAi: openAi));
        }
        catch (EngineUnavailableException e)
        {
            return (null, Problems.Create(StatusCodes.Status503ServiceUnavailable, e.Message, openAi: openAi));
        }
        catch (EngineFailedException e)
        {
            return (null, Problems.Create(StatusCodes.Status500InternalServerError, e.Message, openAi: openAi));
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
