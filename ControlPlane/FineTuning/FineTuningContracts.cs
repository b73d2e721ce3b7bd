using System.Text.Json;
using Timbre.ControlPlane.Voices;

namespace Timbre.ControlPlane.FineTuning;

/// <summary>POST /v1/finetune/jobs: train an engine on a dataset into a new version of a voice.</summary>
/// <param name="Dataset">The id POST /v1/datasets returned.</param>
/// <param name="Engine">classic, qwen3 or xtts (default classic).</param>
/// <param name="Voice">A voice's id or name; a new name creates the voice from the dataset first.</param>
/// <param name="Options">The trainer's settings, such as classic's max_iterations or qwen3's lr and num_epochs.</param>
/// <param name="Force">Activate the new version even when it evaluates worse than the zero-shot clone.</param>
public sealed record NewJobRequest(string? Dataset, string? Engine, string? Voice, JsonElement? Options, bool Force = false);

/// <summary>A job as the API shows it; Progress is its latest event and Result what it made.</summary>
public sealed record JobResponse(
    string Id,
    string Kind,
    string Status,
    string? Stage,
    string? Dataset,
    string? Engine,
    string? Voice,
    string? VoiceId,
    JsonElement Options,
    bool Force,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    string? Error,
    JsonElement? Progress,
    JsonElement? Result,
    int Attempts)
{
    public IReadOnlyList<string> Warnings { get; init; } = [];

    public string Events => $"/v1/finetune/jobs/{Id}/events";

    /// <summary>The node that runs or last ran the job (Timbre:Cluster:NodeName); null before it first ran.</summary>
    public string? Node { get; init; }

    public static JobResponse From(JobRecord j) => new(
        j.Id, j.Kind, j.Status, j.Stage, j.DatasetId, j.Engine, j.Voice, j.VoiceId, Parse(j.Options) ?? default, j.Force,
        j.CreatedAt, j.StartedAt, j.FinishedAt, j.Error, Parse(j.Progress), Parse(j.Result), j.Attempts)
    {
        Node = j.Node,
    };

    internal static JsonElement? Parse(string? json) => json is null ? null : JsonDocument.Parse(json).RootElement.Clone();
}

/// <summary>A dataset as the API shows it: its preparation job and, once ready, prepare's report.</summary>
public sealed record DatasetResponse(string Id, string Name, string Status, DateTimeOffset CreatedAt, string? Error, JsonElement? Report, JobResponse? Job)
{
    public static DatasetResponse From(DatasetRecord d, JobRecord? job) =>
        new(d.Id, d.Name, d.Status, d.CreatedAt, d.Error, JobResponse.Parse(d.Report), job is null ? null : JobResponse.From(job));
}

/// <summary>A voice's versions: 0 is the zero-shot clone; Active is the one speech uses.</summary>
public sealed record VoiceVersionsResponse(string Voice, int Active, IReadOnlyList<VoiceVersionResponse> Versions)
{
    public static VoiceVersionsResponse From(VoiceRecord v)
    {
        var active = v.ActiveVersion ?? 0;
        var list = new List<VoiceVersionResponse> { new(0, "zero-shot", v.CreatedAt, null, null, null, null, active == 0) };
        list.AddRange(v.Versions.Select(x => new VoiceVersionResponse(x.Number, x.Engine, x.CreatedAt, x.JobId, x.DatasetId, x.Evaluation, x.Better, x.Number == active)));
        return new VoiceVersionsResponse(v.Id, active, list);
    }
}

/// <summary>One version; Better says whether it evaluated closer to the speaker than zero-shot without losing intelligibility.</summary>
public sealed record VoiceVersionResponse(int Number, string Engine, DateTimeOffset CreatedAt, string? JobId, string? Dataset, JsonElement? Evaluation, bool? Better, bool Active);
