using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Security;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Cluster;

/// <summary>
/// A sample a front names: its content hash, transcript and role (sample, prompt or reference); or, with role
/// model, the voice's active fine-tuned version, named by its folder digest.
/// </summary>
public sealed record NodeSampleRef(string? Sha256, string? Transcript, string? Role);

/// <summary>The body of POST /v1/cluster/speech: a speech request with the voice named by its samples' hashes.</summary>
/// <param name="Engine">One of this node's own engines (classic, qwen3, xtts); its default when absent.</param>
/// <param name="Text">The words to speak; the worker prepares the text as its engines do.</param>
/// <param name="Language">ISO code, as the front resolved it.</param>
/// <param name="Speed">0.25 to 4.0.</param>
/// <param name="Instructions">Style instructions for engines that take them.</param>
/// <param name="Speaker">A model's own speaker, for engines that do not clone.</param>
/// <param name="Samples">The voice's samples, by SHA-256.</param>
public sealed record NodeSpeechBody(
    string? Engine,
    string? Text,
    string? Language,
    double? Speed,
    string? Instructions,
    string? Speaker,
    List<NodeSampleRef>? Samples);

/// <summary>
/// The node API: what another Timbre node (a front) asks of this one as a worker. Mapped only when
/// Timbre:Cluster:NodeKey is set, and open to that key only. The front's voice library stays the truth: a
/// request names its samples by SHA-256 (and a fine-tuned version by its folder digest), a worker that lacks
/// one answers 409 with the list, and the front sends them (PUT /v1/cluster/samples/{sha256}, or
/// /v1/cluster/models/{digest} as a tar stream), so no one copies voice folders between machines.
/// </summary>
/// <remarks>
/// Audio leaves unmarked and unlogged, as raw 16-bit PCM at 24 kHz: the front marks it with its own key
/// and logs it as its clip, exactly as for a vLLM-Omni server. A node request passes this node's
/// scheduler and engine limits; the per-key rate limit was the front's to apply.
/// </remarks>
public static class NodeApi
{
    public static WebApplication MapNodeApi(this WebApplication app)
    {
        if (string.IsNullOrEmpty(app.Services.GetRequiredService<IOptions<TimbreOptions>>().Value.Cluster.NodeKey))
        {
            return app;
        }

        var group = app.MapGroup("/v1/cluster").WithTags("Cluster").RequireAuthorization(ApiKeys.NodeRole).DisableRateLimiting();
        group.MapPut("/samples/{sha256}", PutSample)
            .WithSummary("Store one voice sample a front sends, under its SHA-256 (checked); 204 when stored or already held.");
        group.MapPut("/models/{digest}", PutModel)
            .WithSummary("Store a fine-tuned version a front sends as a tar stream of its folder, under its folder digest (checked); 204 when stored or already held.");
        group.MapPost("/speech", Speak)
            .WithSummary("Stream speech for another node as raw 16-bit PCM at 24 kHz, unmarked; 409 lists the samples to send first.");
        return app;
    }

    private static async Task<IResult> PutSample(string sha256, HttpRequest request, NodeSamples store, IOptions<TimbreOptions> options, CancellationToken ct)
    {
        if (!NodeSamples.IsDigest(sha256))
        {
            return Problems.BadRequest($"'{sha256}' is no SHA-256: name the sample by the 64 lower-case hex digits of its content's SHA-256.", "sha256");
        }

        if (store.Has(sha256))
        {
            return TypedResults.NoContent();
        }

        var max = options.Value.Limits.MaxUploadBytes;
        if (request.ContentLength > max)
        {
            return Problems.TooLarge($"The sample is {request.ContentLength} bytes; at most {max} are accepted (Timbre:Limits:MaxUploadBytes).");
        }

        return await store.SaveAsync(sha256, request.Body, max, ct) switch
        {
            NodeSamples.Saved.Ok => TypedResults.NoContent(),
            NodeSamples.Saved.TooLarge => Problems.TooLarge($"The sample is larger than {max} bytes (Timbre:Limits:MaxUploadBytes)."),
            NodeSamples.Saved.NotWav => Problems.BadRequest("The sample is not a WAV file (RIFF/WAVE): send the stored sample as the front holds it.", "sample"),
            _ => Problems.BadRequest($"The body's SHA-256 is not {sha256}: the sample changed on the way, or the path names another one.", "sha256"),
        };
    }

    private static async Task<IResult> PutModel(string digest, HttpContext http, NodeSamples store, IOptions<TimbreOptions> options, CancellationToken ct)
    {
        if (!NodeSamples.IsDigest(digest))
        {
            return Problems.BadRequest($"'{digest}' is no folder digest: name the version by the 64 lower-case hex digits of its folder digest (README, the node API).", "digest");
        }

        if (store.HasModel(digest))
        {
            return TypedResults.NoContent();
        }

        var max = options.Value.Cluster.MaxModelBytes;
        var minFree = options.Value.FineTuning.MinFreeBytes;
        var free = Uploads.FreeBytes(options.Value.DataDirectory);
        if (http.Request.ContentLength is { } length && free - length < minFree)
        {
            return Problems.Create(StatusCodes.Status507InsufficientStorage, $"The version needs {length / 1e9:0.0} GB and this node's data directory has {free / 1e9:0.0} GB free, of which {minFree / 1e9:0.#} GB must stay free (Timbre:FineTuning:MinFreeBytes): free space on the worker.");
        }

        // The tar's headers and padding on top of the files themselves.
        if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodyLimit)
        {
            bodyLimit.MaxRequestBodySize = max + (NodeSamples.MaxModelEntries * 1536L);
        }

        var tooLarge = $"The version's files are larger than {max} bytes (Timbre:Cluster:MaxModelBytes on the worker).";
        try
        {
            return await store.SaveModelAsync(digest, http.Request.Body, max, minFree, ct) switch
            {
                (NodeSamples.SavedModel.Ok, _) => TypedResults.NoContent(),
                (NodeSamples.SavedModel.NoSpace, var why) => Problems.Create(StatusCodes.Status507InsufficientStorage, $"{why}, of which {minFree / 1e9:0.#} GB must stay free (Timbre:FineTuning:MinFreeBytes): free space on the worker."),
                (NodeSamples.SavedModel.TooLarge, _) => Problems.TooLarge(tooLarge),
                (NodeSamples.SavedModel.NotTar, var why) => Problems.BadRequest($"The body is not a tar stream ({why}): send the version folder as a tar (POSIX or PAX).", "body"),
                (NodeSamples.SavedModel.BadEntry, var why) => Problems.BadRequest($"The tar holds {why}: send the version folder's regular files with paths relative to it.", "body"),
                _ => Problems.BadRequest($"The folder's digest is not {digest}: the version changed on the way, or the path names another one.", "digest"),
            };
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return Problems.TooLarge(tooLarge);
        }
    }

    private static async Task<IResult> Speak(NodeSpeechBody? body, NodeSamples store, Synthesizer synthesizer, AudioEncoder encoder, HttpContext http, CancellationToken ct)
    {
        if (body is null)
        {
            return Problems.BadRequest("Send a JSON body: {\"engine\", \"text\", \"language\", \"speed\", \"instructions\", \"speaker\", \"samples\": [{\"sha256\", \"transcript\", \"role\"}]}.");
        }

        var refs = body.Samples ?? [];
        foreach (var r in refs)
        {
            if (!NodeSamples.IsDigest(r.Sha256))
            {
                return Problems.BadRequest($"samples holds '{r.Sha256}': name each sample by the 64 lower-case hex digits of its SHA-256.", "samples");
            }

            if (r.Role is not (null or "sample" or "prompt" or "reference" or "model"))
            {
                return Problems.BadRequest($"samples holds role '{r.Role}': use sample, prompt, reference or model (a fine-tuned version's folder).", "samples");
            }
        }

        if (refs.Count(r => r.Role == "model") > 1)
        {
            return Problems.BadRequest("samples names more than one model: a voice speaks with one active version at a time.", "samples");
        }

        var missing = refs.Where(r => !store.Holds(r)).Select(r => r.Sha256!).Distinct().ToList();
        if (missing.Count > 0)
        {
            return TypedResults.Problem(
                $"This node lacks {missing.Count} of the voice's samples: send each with PUT /v1/cluster/samples/{{sha256}} (a version folder with PUT /v1/cluster/models/{{digest}}), then ask again.",
                statusCode: StatusCodes.Status409Conflict,
                title: Problems.Title(StatusCodes.Status409Conflict),
                extensions: new Dictionary<string, object?> { ["missing"] = missing });
        }

        var voice = store.VoiceOf(refs);
        var (job, problem) = synthesizer.CheckForNode(new SpeechInput(body.Text, body.Speaker, body.Language, body.Engine, body.Instructions, body.Speed), voice);
        if (problem is not null)
        {
            return SpeechHttp.Problem(problem, openAi: false);
        }

        var (stream, error) = await SpeechHttp.StartAsync(synthesizer, job!, http, SpeechFields.Native, openAi: false);
        if (error is not null)
        {
            return error;
        }

        return await SpeechHttp.DeliverAsync(http, stream!, SpeechFields.Native, openAi: false, async () =>
        {
            if (stream!.SampleRate != RemoteEngine.SampleRate)
            {
                return Problems.Create(StatusCodes.Status500InternalServerError, $"The {job!.Engine} engine runs at {stream.SampleRate} Hz; the node API carries {RemoteEngine.SampleRate} Hz only.");
            }

            var audio = encoder.EncodeAsync(stream.ReadPcmAsync(ct), stream.SampleRate, "pcm", ct);
            await SpeechHttp.WriteAudioAsync(http.Response, audio, "pcm", stream.SampleRate, ct);
            return TypedResults.Empty;
        });
    }
}
