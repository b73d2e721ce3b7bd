using System.Text.Json;

namespace Timbre.ControlPlane.Engines;

// What crosses between EngineHost and its callers: engine descriptions, samples, requests, the
// enrolment report, and the exceptions the endpoints map to problem details.

/// <summary>What an engine says about itself once loaded.</summary>
public sealed record EngineInfo(string Name, int SampleRate, IReadOnlyList<string> Languages);

/// <summary>What an engine is, whether it can run here and why not (GET /v1/engines).</summary>
public sealed record EngineDescription(
    string Name,
    string Title,
    bool Available,
    string? Reason,
    bool Gpu,
    string Model,
    string Mode,
    IReadOnlyList<string> Languages,
    IReadOnlyList<string> Capabilities,
    IReadOnlyList<string> Speakers,
    string License,
    bool Loaded,
    bool Default,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    IReadOnlyList<RemoteEndpointState>? Endpoints = null);

/// <summary>A sample as enrolment receives it: the stored (normalised) copy, the unnormalised decode, its name and transcript.</summary>
public sealed record EnrolmentSample(string Path, string Raw, string Name, string? Transcript);

/// <summary>What enrolment found; Json is the whole report as the API shows it.</summary>
public sealed record EnrolmentReport(
    IReadOnlyList<EnrolmentSampleReport> Samples,
    EnrolmentPrompt? Prompt,
    EnrolmentReference? Reference,
    IReadOnlyList<string> Warnings)
{
    [System.Text.Json.Serialization.JsonIgnore]
    public JsonElement Json { get; init; }
}

public sealed record EnrolmentSampleReport(string File, double Seconds, string? Transcript, string? TranscriptSource);

public sealed record EnrolmentPrompt(string File, string? Transcript, string? TranscriptSource);

public sealed record EnrolmentReference(string File, double Seconds);

/// <summary>A voice sample as the engines receive it; role is sample, prompt (the enrolment's chosen segment) or reference.</summary>
public sealed record EngineSample(string Path, string? Transcript, string Role = "sample");

/// <summary>The engine-facing part of a speech request; Speaker names a model's built-in or fine-tuned speaker.</summary>
public sealed record EngineSpeechRequest(string Text, string? Language, double Speed, string? Instructions, string? Speaker = null)
{
    /// <summary>How the stream's audio is marked; the Python host refuses a stream without it.</summary>
    public EngineMark? Mark { get; init; }

    /// <summary>Engine-specific choices, as the Python engines read them.</summary>
    public IReadOnlyDictionary<string, string?> Options => new Dictionary<string, string?> { ["speaker"] = Speaker };
}

/// <summary>The request asks for something the engine cannot do (maps to 400 naming <see cref="Field"/>).</summary>
public sealed class EngineInputException(string message, string? field = null) : Exception(message)
{
    /// <summary>The request field at fault in the engine's words (text, language, speed, instructions, voice), when one is.</summary>
    public string? Field { get; } = field;
}

/// <summary>The engine broke (maps to 500 without details).</summary>
public sealed class EngineFailedException(string message, Exception inner) : Exception(message, inner);

/// <summary>The engines are not ready (maps to 503).</summary>
public sealed class EngineUnavailableException(string message) : Exception(message);

/// <summary>The provenance mark for one stream: the install's key file and the clip's payload (null: marking is off).</summary>
public sealed record EngineMark(string Key, uint? Tag);

/// <summary>What a search for the provenance mark found in a clip (timbre/provenance/detect.py).</summary>
/// <param name="Detected">The score reached the detector's threshold.</param>
/// <param name="Score">The z-score of the best alignment; the mark is detected at 6 and above.</param>
/// <param name="Threshold">The detector's decision threshold on the score.</param>
/// <param name="Tag">The decoded payload, when detected and its checksum holds.</param>
/// <param name="PayloadValid">The payload decoded and its checksum holds.</param>
/// <param name="Seconds">The clip's length.</param>
/// <param name="Windows">Scores of 4-second stretches, 1 second apart.</param>
public sealed record MarkSearch(bool Detected, double Score, double Threshold, uint? Tag, bool PayloadValid, double Seconds, IReadOnlyList<MarkWindow> Windows);

/// <summary>A stretch of the clip (seconds) and the mark's score in it.</summary>
public sealed record MarkWindow(double Start, double End, double Score);
