using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Voices;

namespace Timbre.ControlPlane.Provenance;

/// <summary>The clip a detected payload belongs to, from the generation log.</summary>
public sealed record DetectedClip(string Id, DateTimeOffset CreatedAt, string Voice, string Engine);

/// <summary>What POST /v1/provenance/detect answers.</summary>
/// <param name="Detected">The clip carries this install's mark (score at or above <paramref name="Threshold"/>).</param>
/// <param name="Score">The mark's z-score at its best alignment: near 0 on audio without it.</param>
/// <param name="Threshold">The score from which the mark counts as found.</param>
/// <param name="PayloadValid">The payload decoded and its checksum holds.</param>
/// <param name="Clip">The generation log's record for the payload; null when there is none.</param>
/// <param name="Seconds">The recording's length.</param>
/// <param name="Windows">Scores of 4-second stretches, 1 second apart, to locate marked parts of a longer clip.</param>
public sealed record DetectionResponse(bool Detected, double Score, double Threshold, bool PayloadValid, DetectedClip? Clip, double Seconds, IReadOnlyList<MarkWindow> Windows);

/// <summary>/v1/provenance: was a clip made by this Timbre, and which clip was it.</summary>
public static class ProvenanceApi
{
    public static WebApplicationBuilder AddProvenance(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<ProvenanceKey>();
        builder.Services.AddSingleton<GenerationLog>();
        return builder;
    }

    public static IEndpointRouteBuilder MapProvenance(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/v1/provenance").WithTags("Provenance")
            .MapPost("/detect", Detect).DisableAntiforgery()
            .WithSummary("Look for Timbre's provenance mark in a recording")
            .WithDescription("Multipart form with one `file` (WAV, MP3, FLAC, OGG, M4A or WebM; the limits of a voice sample). Answers whether the clip carries this install's mark, how strongly, where, and — when its payload decodes — which clip of the generation log it is.");
        return app;
    }

    public static async Task<Results<Ok<DetectionResponse>, ProblemHttpResult>> Detect(
        HttpContext http, AudioImporter importer, EngineHost engines, GenerationLog log, VoiceLibrary library, IOptions<TimbreOptions> options, CancellationToken ct)
    {
        var limits = options.Value.Limits;
        if (!http.Request.HasFormContentType)
        {
            return Problems.BadRequest("Send multipart/form-data with the recording as 'file'.", "file");
        }

        var (form, tooLarge) = await Uploads.ReadFormAsync(http, limits.MaxUploadBytes + (1 << 20), $"The file may be at most {limits.MaxUploadBytes / (1024 * 1024)} MB.", ct);
        if (form is null)
        {
            return tooLarge!;
        }

        var files = form.Files.GetFiles("file");
        if (files.Count != 1)
        {
            return Problems.BadRequest($"Attach exactly one recording as 'file' ({string.Join(", ", AudioImporter.Extensions)}); {files.Count} were sent.", "file");
        }

        var upload = files[0];
        var name = Path.GetFileName(upload.FileName);
        if (upload.Length > limits.MaxUploadBytes)
        {
            return Problems.TooLarge($"{name} is {upload.Length / (1024.0 * 1024):0.#} MB; the file may be at most {limits.MaxUploadBytes / (1024 * 1024)} MB.");
        }

        var extension = Path.GetExtension(upload.FileName);
        if (!AudioImporter.Extensions.Contains(extension, StringComparer.OrdinalIgnoreCase))
        {
            return Problems.BadRequest($"{name}: unsupported file type; upload {string.Join(", ", AudioImporter.Extensions)}.", "file");
        }

        // Spooled beside the library, never inside it, and always removed: nothing of an upload is kept.
        var spool = library.NewSpool("detect");
        Directory.CreateDirectory(spool);
        try
        {
            var source = Path.Combine(spool, "upload");
            await using (var target = File.Create(source))
            {
                await upload.CopyToAsync(target, ct);
            }

            await importer.CheckAsync(source, extension, name, limits.MaxSampleSeconds, ct);
            var decoded = Path.Combine(spool, "decoded.wav");
            // No level change: the detector normalises every frame itself.
            await importer.DecodeUnnormalisedAsync(source, decoded, ct);
            var seconds = (new FileInfo(decoded).Length - 44) / 4.0 / AudioImporter.SampleRate;
            if (seconds < 1.0)
            {
                return Problems.BadRequest($"{name}: only {seconds.ToString("0.##", CultureInfo.InvariantCulture)} s of audio; the mark needs at least 3 seconds to be found reliably.", "file");
            }

            if (seconds > limits.MaxSampleSeconds + 0.5)
            {
                return Problems.BadRequest($"{name}: {seconds:0.#} s long; a file may be at most {limits.MaxSampleSeconds:0} s (Timbre:Limits:MaxSampleSeconds). Cut it, or run ops/provenance detect on the server.", "file");
            }

            var found = await engines.DetectMarkAsync(decoded, ct);
            var clip = found.Tag is { } tag && log.FindByTag(tag) is [var first, ..]
                ? new DetectedClip(first.Id, first.CreatedAt, first.Voice, first.Engine)
                : null;
            return TypedResults.Ok(new DetectionResponse(found.Detected, found.Score, found.Threshold, found.PayloadValid, clip, found.Seconds, found.Windows));
        }
        catch (InvalidAudioException e)
        {
            return Problems.BadRequest(e.Message, "file");
        }
        finally
        {
            Directory.Delete(spool, recursive: true);
        }
    }
}
