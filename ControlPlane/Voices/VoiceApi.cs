using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Voices;

/// <summary>/v1/voices: enrol, list, inspect and delete voices.</summary>
public static class VoiceApi
{
    public static IEndpointRouteBuilder MapVoices(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/voices").WithTags("Voices");
        group.MapPost("/", CreateVoice).DisableAntiforgery();
        group.MapGet("/", ListVoices);
        group.MapGet("/{id}", GetVoice);
        group.MapDelete("/{id}", DeleteVoice);
        group.MapGet("/{id}/audio", VoiceAudio)
            .WithSummary("Hear a voice: the clip its clones start from, or one stored sample")
            .WithDescription("Without `sample`: the enrolment's prompt segment (what Qwen3 clones from), else its reference, else the first sample. With `sample=N`: the N-th stored sample (0-based), as normalised at enrolment. 16-bit 24 kHz mono WAV.");
        return app;
    }

    public static WebApplicationBuilder AddVoices(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<AudioImporter>();
        builder.Services.AddSingleton<VoiceLibrary>();
        return builder;
    }

    public static async Task<Results<Created<VoiceResponse>, ProblemHttpResult>> CreateVoice(
        HttpContext http, VoiceLibrary library, IOptions<TimbreOptions> options, CancellationToken ct)
    {
        var limits = options.Value.Limits;
        if (!http.Request.HasFormContentType)
        {
            return Problems.BadRequest("Send multipart/form-data with a 'name' field and one or more 'files'.");
        }

        // Every file at its cap, plus a megabyte for the form's other fields and boundaries.
        var maxBody = (limits.MaxUploadBytes * limits.MaxFilesPerVoice) + (1 << 20);
        var (form, tooLarge) = await Uploads.ReadFormAsync(http, maxBody, $"Each file may be at most {limits.MaxUploadBytes / (1024 * 1024)} MB, {limits.MaxFilesPerVoice} files at most.", ct);
        if (form is null)
        {
            return tooLarge!;
        }

        var name = form["name"].ToString();
        if (VoiceNames.Validate(name) is { } nameError)
        {
            return Problems.BadRequest(nameError, "name");
        }

        var files = form.Files.GetFiles("files");
        if (files.Count == 0)
        {
            return Problems.BadRequest("Attach at least one recording as 'files' (WAV, MP3, FLAC, OGG, M4A or WebM, 3–60 s of speech).", "files");
        }

        if (files.Count > limits.MaxFilesPerVoice)
        {
            return Problems.BadRequest($"{files.Count} files sent; a voice takes at most {limits.MaxFilesPerVoice}.", "files");
        }

        foreach (var f in files)
        {
            if (f.Length > limits.MaxUploadBytes)
            {
                return Problems.TooLarge($"{f.FileName} is {f.Length / (1024.0 * 1024):0.#} MB; each file may be at most {limits.MaxUploadBytes / (1024 * 1024)} MB.");
            }

            if (!AudioImporter.Extensions.Contains(Path.GetExtension(f.FileName), StringComparer.OrdinalIgnoreCase))
            {
                return Problems.BadRequest($"{f.FileName}: unsupported file type; upload {string.Join(", ", AudioImporter.Extensions)}.", "files");
            }
        }

        var transcripts = form["transcripts"].Select(t => t ?? "").ToList();
        if (transcripts.Count > files.Count)
        {
            return Problems.BadRequest($"{transcripts.Count} transcripts for {files.Count} files; send at most one transcript per file, in the same order.", "transcripts");
        }

        var language = form["language"].ToString();
        var spool = library.NewSpool("upload");
        Directory.CreateDirectory(spool);
        try
        {
            var spooled = new List<SpooledFile>();
            for (var i = 0; i < files.Count; i++)
            {
                var path = Path.Combine(spool, $"{i}");
                await using (var target = File.Create(path))
                {
                    await files[i].CopyToAsync(target, ct);
                }

                spooled.Add(new SpooledFile(Path.GetFileName(files[i].FileName), Path.GetExtension(files[i].FileName), path));
            }

            var voice = await library.CreateAsync(new NewVoice(name, string.IsNullOrWhiteSpace(language) ? null : language, spooled, transcripts), ct);
            return TypedResults.Created($"/v1/voices/{voice.Id}", VoiceResponse.From(voice));
        }
        catch (InvalidAudioException e)
        {
            return Problems.BadRequest(e.Message, "files");
        }
        catch (VoiceConflictException e)
        {
            return TypedResults.Problem(e.Message, statusCode: StatusCodes.Status409Conflict, title: "Voice already exists");
        }
        catch (EngineInputException e)
        {
            return Problems.BadRequest(e.Message, "files");
        }
        finally
        {
            Directory.Delete(spool, recursive: true);
        }
    }

    public static Ok<VoiceResponse[]> ListVoices(VoiceLibrary library) =>
        TypedResults.Ok(library.List().Select(VoiceResponse.From).ToArray());

    public static Results<Ok<VoiceResponse>, ProblemHttpResult> GetVoice(string id, VoiceLibrary library)
    {
        if (!VoiceNames.IsValidId(id))
        {
            return Problems.BadRequest($"'{id}' is not a voice id: ids are lower-case letters, digits and hyphens (see GET /v1/voices).", "id");
        }

        return library.Find(id) is { } voice && voice.Id == id
            ? TypedResults.Ok(VoiceResponse.From(voice))
            : Problems.NotFound($"No voice with id '{id}'. GET /v1/voices lists them.");
    }

    public static async Task<Results<NoContent, ProblemHttpResult>> DeleteVoice(string id, VoiceLibrary library, CancellationToken ct)
    {
        if (!VoiceNames.IsValidId(id))
        {
            return Problems.BadRequest($"'{id}' is not a voice id: ids are lower-case letters, digits and hyphens (see GET /v1/voices).", "id");
        }

        return await library.DeleteAsync(id, ct)
            ? TypedResults.NoContent()
            : Problems.NotFound($"No voice with id '{id}'. GET /v1/voices lists them.");
    }

    public static Results<PhysicalFileHttpResult, ProblemHttpResult> VoiceAudio(string id, int? sample, VoiceLibrary library)
    {
        if (!VoiceNames.IsValidId(id))
        {
            return Problems.BadRequest($"'{id}' is not a voice id: ids are lower-case letters, digits and hyphens (see GET /v1/voices).", "id");
        }

        if (library.Find(id) is not { } voice || voice.Id != id || library.FolderOf(id) is not { } folder)
        {
            return Problems.NotFound($"No voice with id '{id}'. GET /v1/voices lists them.");
        }

        string? file;
        if (sample is { } n)
        {
            if (n < 0 || n >= voice.Samples.Count)
            {
                return Problems.BadRequest($"Voice '{id}' has {voice.Samples.Count} samples; ask for sample 0 to {voice.Samples.Count - 1}.", "sample");
            }

            file = voice.Samples[n].File;
        }
        else
        {
            file = voice.Prompt?.File ?? voice.Reference ?? (voice.Samples.Count > 0 ? voice.Samples[0].File : null);
        }

        var path = file is null ? null : Path.GetFullPath(Path.Combine(folder, file));
        if (path is null || !path.StartsWith(folder + Path.DirectorySeparatorChar, StringComparison.Ordinal) || !File.Exists(path))
        {
            return Problems.NotFound($"Voice '{id}' has no stored audio to play; enrol it again.");
        }

        return TypedResults.PhysicalFile(path, "audio/wav", $"{id}.wav", enableRangeProcessing: true);
    }
}

/// <summary>A voice as the API shows it.</summary>
public sealed record VoiceResponse(
    string Id,
    string Name,
    string? Language,
    DateTimeOffset CreatedAt,
    double TotalSeconds,
    IReadOnlyList<VoiceSampleResponse> Samples,
    IReadOnlyDictionary<string, Dictionary<string, System.Text.Json.JsonElement>> Profiles,
    IReadOnlyList<string> Warnings,
    System.Text.Json.JsonElement? Quality)
{
    public static VoiceResponse From(VoiceRecord v) => new(
        v.Id,
        v.Name,
        v.Language,
        v.CreatedAt,
        Math.Round(v.Samples.Sum(s => s.DurationSeconds), 2),
        v.Samples.Select(s => new VoiceSampleResponse(s.OriginalName, s.DurationSeconds, s.Transcript, s.TranscriptSource)).ToList(),
        v.Profiles ?? [],
        v.Quality is { } q && q.TryGetProperty("warnings", out var w) ? w.EnumerateArray().Select(x => x.GetString()!).ToList() : [],
        v.Quality);
}

/// <summary>A sample as the API shows it; TranscriptSource says whether the words were given (user) or recognised.</summary>
public sealed record VoiceSampleResponse(string FileName, double DurationSeconds, string? Transcript, string? TranscriptSource);
