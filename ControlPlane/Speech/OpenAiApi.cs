using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Voices;

namespace Timbre.ControlPlane.Speech;

/// <summary>The OpenAI-compatible surface: /v1/audio/speech, /v1/models, /v1/audio/voices.</summary>
public static class OpenAiApi
{
    /// <summary>OpenAI's model names, served by the default engine so unmodified clients work.</summary>
    private static readonly string[] Aliases = ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];

    private static readonly SpeechFields Fields = new("input", "voice", "model");

    public static IEndpointRouteBuilder MapOpenAi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("OpenAI-compatible");
        group.MapPost("/audio/speech", Speech)
            .WithSummary("OpenAI-compatible text to speech")
            .WithDescription("As OpenAI's POST /v1/audio/speech: model (tts-1, tts-1-hd, gpt-4o-mini-tts or an engine name), input, voice (a Timbre voice id or name), response_format, speed, instructions, stream_format (audio or sse). The body streams as the audio is generated.")
            .Accepts<OpenAiSpeechBody>("application/json")
            .Produces(StatusCodes.Status200OK, contentType: "audio/mpeg")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);
        group.MapGet("/models", Models).WithSummary("Models, as OpenAI clients list them");
        group.MapGet("/models/{id}", Model).WithSummary("One model");
        group.MapGet("/audio/voices", Voices).WithSummary("The voices an OpenAI-style client may name");
        return app;
    }

    public static async Task<IResult> Speech(
        OpenAiSpeechBody? body, HttpContext http, Synthesizer synthesizer, AudioEncoder encoder, VoiceLibrary voices, IOptions<TimbreOptions> options, EngineHost engines, CancellationToken ct)
    {
        if (body is null)
        {
            return Problems.Create(400, "Send a JSON body such as {\"model\": \"tts-1\", \"input\": \"Hello\", \"voice\": \"ada\"}.", openAi: true);
        }

        var engine = EngineOf(body.Model, engines);
        if (engine is null)
        {
            return Problems.Create(400, $"model '{body.Model}' does not exist; use one of {string.Join(", ", ModelIds(engines))}.", "model", openAi: true);
        }

        var format = (body.ResponseFormat ?? "mp3").ToLowerInvariant();
        if (!AudioEncoder.Formats.Contains(format))
        {
            return Problems.Create(400, $"response_format '{body.ResponseFormat}' is not supported; use one of {string.Join(", ", AudioEncoder.Formats)}.", "response_format", openAi: true);
        }

        var streamFormat = (body.StreamFormat ?? "audio").ToLowerInvariant();
        if (streamFormat is not ("audio" or "sse"))
        {
            return Problems.Create(400, $"stream_format '{body.StreamFormat}' is not supported; use audio or sse.", "stream_format", openAi: true);
        }

        // OpenAI clients often send one of OpenAI's own voices (alloy, nova, …); the configured
        // default voice answers those instead of a failure the user cannot fix in the client.
        var voice = body.Voice;
        var fallback = options.Value.Speech.DefaultVoice;
        if ((string.IsNullOrWhiteSpace(voice) || voices.Find(voice) is null) && !synthesizer.IsSpeaker(engine, voice) && !string.IsNullOrWhiteSpace(fallback))
        {
            voice = fallback;
        }

        var (job, problem) = synthesizer.Check(new SpeechInput(body.Input, voice, null, engine, body.Instructions, body.Speed), Fields);
        if (problem is not null)
        {
            // A voice in the body is a bad parameter, not a missing resource, as OpenAI reports it.
            return SpeechHttp.Problem(problem.Status == 404 ? problem with { Status = 400 } : problem, openAi: true);
        }

        var (stream, error) = await SpeechHttp.StartAsync(synthesizer, job!, http, Fields, openAi: true);
        if (error is not null)
        {
            return error;
        }

        return await SpeechHttp.DeliverAsync(http, stream!, Fields, openAi: true, async () =>
        {
            var pieces = encoder.EncodeAsync(stream!.ReadPcmAsync(ct), stream.SampleRate, format, ct);
            if (streamFormat == "sse")
            {
                await SpeechHttp.WriteEventsAsync(http.Response, pieces, body.Input!.Length, ct);
            }
            else
            {
                await SpeechHttp.WriteAudioAsync(http.Response, pieces, format, stream.SampleRate, ct);
            }

            return TypedResults.Empty;
        });
    }

    public static Ok<ModelList> Models(EngineHost engines) =>
        TypedResults.Ok(new ModelList("list", ModelIds(engines).Select(Describe).ToList()));

    public static Results<Ok<ModelInfo>, ProblemHttpResult> Model(string id, EngineHost engines) =>
        ModelIds(engines).Contains(id)
            ? TypedResults.Ok(Describe(id))
            : Problems.Create(404, $"No model '{id}'; GET /v1/models lists them.", openAi: true);

    public static Ok<VoiceList> Voices(VoiceLibrary voices, IOptions<TimbreOptions> options)
    {
        var fallback = options.Value.Speech.DefaultVoice is { } d ? voices.Find(d)?.Id : null;
        return TypedResults.Ok(new VoiceList(voices.List().Select(v => new VoiceEntry(v.Id, v.Name, v.Language, v.Id == fallback)).ToList()));
    }

    private static string? EngineOf(string? model, EngineHost engines)
    {
        if (string.IsNullOrWhiteSpace(model) || Aliases.Contains(model, StringComparer.OrdinalIgnoreCase))
        {
            return engines.DefaultEngine;
        }

        return engines.Names.FirstOrDefault(e => e.Equals(model, StringComparison.OrdinalIgnoreCase));
    }

    private static IEnumerable<string> ModelIds(EngineHost engines) => engines.Names.Concat(Aliases);

    private static ModelInfo Describe(string id) => new(id, "model", 0, "timbre");
}

/// <summary>OpenAI's speech request; unknown fields are ignored.</summary>
public sealed record OpenAiSpeechBody(
    [property: JsonPropertyName("model")] string? Model,
    [property: JsonPropertyName("input")] string? Input,
    [property: JsonPropertyName("voice")] string? Voice,
    [property: JsonPropertyName("response_format")] string? ResponseFormat,
    [property: JsonPropertyName("speed")] double? Speed,
    [property: JsonPropertyName("instructions")] string? Instructions,
    [property: JsonPropertyName("stream_format")] string? StreamFormat);

public sealed record ModelList(
    [property: JsonPropertyName("object")] string Kind,
    [property: JsonPropertyName("data")] IReadOnlyList<ModelInfo> Data);

public sealed record ModelInfo(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Kind,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("owned_by")] string OwnedBy);

public sealed record VoiceList([property: JsonPropertyName("voices")] IReadOnlyList<VoiceEntry> Voices);

public sealed record VoiceEntry(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("language")] string? Language,
    [property: JsonPropertyName("default")] bool Default);
