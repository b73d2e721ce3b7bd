using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Observability;
using Timbre.ControlPlane.Provenance;
using Timbre.ControlPlane.Voices;

namespace Timbre.ControlPlane.Speech;

/// <summary>What every speech endpoint asks for, before it is checked.</summary>
public sealed record SpeechInput(string? Text, string? Voice, string? Language, string? Engine, string? Instructions, double? Speed);

/// <summary>The names a given API uses for the fields of <see cref="SpeechInput"/>, so errors name the caller's field.</summary>
public sealed record SpeechFields(string Text, string Voice, string Engine)
{
    public static readonly SpeechFields Native = new("text", "voice", "engine");

    /// <summary>The caller's name for a field an engine named (text, voice, language, speed, instructions).</summary>
    public string? Of(string? engineField) => engineField switch
    {
        "text" => Text,
        "voice" => Voice,
        _ => engineField,
    };
}

/// <summary>A checked request: an engine, a voice that exists and what to say.</summary>
public sealed record SpeechJob(string Engine, VoiceRecord Voice, string VoiceDirectory, IReadOnlyList<EngineSample> Samples, EngineSpeechRequest Request)
{
    /// <summary>
    /// Another Timbre node asked (the node API, <see cref="Synthesizer.CheckForNode"/> alone sets it): the audio
    /// goes out unmarked and is not logged here, since that node marks it with its own key and logs it as its clip.
    /// </summary>
    public bool ForNode { get; init; }
}

/// <summary>A voice another node sent: its samples stored on this node by content, and a folder for the engines' caches.</summary>
public sealed record NodeVoice(VoiceRecord Record, string Folder, IReadOnlyList<EngineSample> Samples);

/// <summary>Why a request cannot be served, with the status and field to report.</summary>
public sealed record SpeechProblem(int Status, string Detail, string? Field);

/// <summary>Between the endpoints and the engines: checks requests, admits them through the scheduler, measures them.</summary>
public sealed partial class Synthesizer(
    EngineHost engines,
    SpeechScheduler scheduler,
    VoiceLibrary voices,
    TimbreMetrics metrics,
    ProvenanceKey provenanceKey,
    GenerationLog generations,
    IOptions<TimbreOptions> options,
    ILogger<Synthesizer> logger)
{
    private readonly TimbreOptions settings = options.Value;

    /// <summary>Checks a request against the limits and the library; the problem says what to change.</summary>
    public (SpeechJob? Job, SpeechProblem? Problem) Check(SpeechInput input, SpeechFields fields) => Check(input, fields, null);

    /// <summary>
    /// Checks another node's request (the node API): the same limits, one of this node's own engines, and the
    /// voice it sent (its samples, stored here by content) in place of one from the library.
    /// </summary>
    public (SpeechJob? Job, SpeechProblem? Problem) CheckForNode(SpeechInput input, NodeVoice voice)
    {
        // A worker whose own engine is remote would pass the request on: nodes do not chain.
        if ((input.Engine ?? engines.DefaultEngine) is var engine && engines.IsRemote(engine))
        {
            return Fail(400, $"engine '{engine}' is remote on this node too: a worker serves its own engines ({string.Join(", ", engines.List().Where(d => d.Endpoints is null).Select(d => d.Name))}).", "engine");
        }

        return Check(input, SpeechFields.Native, voice);
    }

    private (SpeechJob? Job, SpeechProblem? Problem) Check(SpeechInput input, SpeechFields fields, NodeVoice? given)
    {
        var maxText = settings.Limits.MaxTextLength;
        if (string.IsNullOrWhiteSpace(input.Text))
        {
            return Fail(400, $"{fields.Text} is empty: give the words to speak.", fields.Text);
        }

        if (input.Text.Length > maxText)
        {
            return Fail(400, $"{fields.Text} is {input.Text.Length} characters; at most {maxText} are accepted per request. Split it into several requests.", fields.Text);
        }

        if (input.Speed is { } speed && (speed < 0.25 || speed > 4.0 || double.IsNaN(speed)))
        {
            return Fail(400, $"speed must be between 0.25 and 4.0, got {speed}.", "speed");
        }

        var engine = input.Engine ?? engines.DefaultEngine;
        if (!engines.Exists(engine))
        {
            return Fail(400, $"{fields.Engine} '{engine}' does not exist; use one of {string.Join(", ", engines.Names)}.", fields.Engine);
        }

        var description = engines.Describe(engine);
        // A remote engine whose endpoints all failed recently answers 503 when it is tried: that passes.
        if (description is { Available: false } && !engines.IsRemote(engine))
        {
            var usable = engines.List().Where(d => d.Available).Select(d => d.Name);
            return Fail(400, $"{fields.Engine} '{engine}' is not available on this server: {description.Reason}. Use one of {string.Join(", ", usable)} (GET /v1/engines).", fields.Engine);
        }

        if (description is not null && !description.Capabilities.Contains("clone"))
        {
            return CheckModelVoice(input, fields, engine, description);
        }

        if (given is not null)
        {
            if (given.Samples.Count == 0)
            {
                return Fail(400, "samples is empty: send the voice's samples (sha256, transcript, role).", "voice");
            }

            var nodeRequest = new EngineSpeechRequest(input.Text, input.Language, input.Speed ?? 1.0, input.Instructions);
            return (new SpeechJob(engine, given.Record, given.Folder, given.Samples, nodeRequest) { ForNode = true }, null);
        }

        if (string.IsNullOrWhiteSpace(input.Voice))
        {
            return Fail(400, $"{fields.Voice} is required: give a voice id or name from GET /v1/voices.", fields.Voice);
        }

        if (voices.Find(input.Voice) is not { } voice)
        {
            return Fail(404, $"No voice '{input.Voice}'. GET /v1/voices lists the voices; POST /v1/voices enrols one.", fields.Voice);
        }

        var request = new EngineSpeechRequest(input.Text, input.Language ?? voice.Language, input.Speed ?? 1.0, input.Instructions);
        return (new SpeechJob(engine, voice, voices.FolderOf(voice.Id)!, voices.EngineSamples(voice), request), null);
    }

    /// <summary>True when the voice names one of the engine's own speakers rather than a Timbre voice.</summary>
    public bool IsSpeaker(string engine, string? voice) =>
        voice is not null && engines.Describe(engine) is { } d && !d.Capabilities.Contains("clone")
        && d.Speakers.Any(s => s.Equals(voice, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// An engine whose model does not clone (a CustomVoice, fine-tuned or VoiceDesign model) speaks with
    /// the model's own speakers, or with a voice described by instructions: no library voice is used.
    /// </summary>
    private static (SpeechJob?, SpeechProblem?) CheckModelVoice(SpeechInput input, SpeechFields fields, string engine, EngineDescription description)
    {
        string? speaker = null;
        if (description.Capabilities.Contains("design"))
        {
            if (!string.IsNullOrWhiteSpace(input.Voice))
            {
                return Fail(400, $"The {engine} engine runs a VoiceDesign model: leave {fields.Voice} out and describe the voice in instructions.", fields.Voice);
            }

            if (string.IsNullOrWhiteSpace(input.Instructions))
            {
                return Fail(400, $"The {engine} engine runs a VoiceDesign model: describe the voice to speak in with instructions (for example \"a calm, low male voice\").", "instructions");
            }
        }
        else if (string.IsNullOrWhiteSpace(input.Voice))
        {
            if (description.Speakers.Count != 1)
            {
                return Fail(400, $"{fields.Voice} is required: the {engine} model speaks as {string.Join(", ", description.Speakers)}.", fields.Voice);
            }

            speaker = description.Speakers[0];
        }
        else
        {
            speaker = description.Speakers.FirstOrDefault(s => s.Equals(input.Voice, StringComparison.OrdinalIgnoreCase));
            if (speaker is null)
            {
                return Fail(400, $"The {engine} engine runs a {description.Mode.Replace('_', ' ')} model that speaks as {string.Join(", ", description.Speakers)}, not as '{input.Voice}'. Choose one of those, or an engine that clones (GET /v1/engines).", fields.Voice);
            }
        }

        var id = VoiceNames.Slug(speaker ?? "designed");
        var voice = new VoiceRecord(id, speaker ?? "designed voice", null, DateTimeOffset.UnixEpoch, [], null);
        var request = new EngineSpeechRequest(input.Text!, input.Language, input.Speed ?? 1.0, input.Instructions, speaker);
        return (new SpeechJob(engine, voice, "", [], request), null);
    }

    private static (SpeechJob?, SpeechProblem?) Fail(int status, string detail, string? field) => (null, new SpeechProblem(status, detail, field));

    /// <summary>
    /// Admits the job, starts the engine and waits for its first audio, so that refusals and bad input
    /// surface as errors before a caller commits to a response.
    /// </summary>
    /// <param name="job">The checked request.</param>
    /// <param name="client">Who asks, for fairness in the queue.</param>
    /// <param name="cutOff">
    /// Drops the caller's connection. Called once, from a timer, when the client accepts no audio for
    /// <c>WriteStallSeconds</c> or the request's deadline passes while its audio is being written: a
    /// write blocked on a client that stopped reading cannot be cancelled any other way.
    /// </param>
    /// <param name="cancellationToken">The caller going away.</param>
    /// <exception cref="SpeechRejectedException">Queue full, draining, or the request timed out before audio.</exception>
    /// <exception cref="EngineInputException">The engine refused the request.</exception>
    /// <exception cref="EngineUnavailableException">The engine cannot load.</exception>
    public async Task<SpeechStream> StartAsync(SpeechJob job, string client, Action cutOff, CancellationToken cancellationToken)
    {
        var arrived = TimeProvider.System.GetTimestamp();
        var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(settings.Speech.RequestTimeoutSeconds));
        SpeechScheduler.SpeechLease? lease = null;
        IAsyncEnumerator<float[]>? chunks = null;
        try
        {
            lease = await scheduler.EnterAsync(job.Engine, client, job.Request.Text.Length, timeout.Token);
            var info = await engines.LoadAsync(job.Engine, timeout.Token);
            // A node's request has no clip here: its front marks and logs it.
            var clip = "";
            uint? tag = null;
            var logged = Task.CompletedTask;
            if (!job.ForNode)
            {
                clip = "clip_" + Guid.CreateVersion7().ToString("n");
                tag = provenanceKey.TagOf(clip);
                // The log's write (an fsync) runs beside the engine's first chunk rather than before it, and is
                // awaited before any audio leaves: a clip the log cannot attribute is never sent.
                var record = new ClipRecord(clip, tag.Value, DateTimeOffset.UtcNow, job.Voice.Id, job.Engine, client,
                    Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(job.Request.Text))));
                logged = Task.Run(() => generations.Record(record), CancellationToken.None);
            }

            var request = job.Request with { Mark = new EngineMark(provenanceKey.Path, settings.Provenance.Enabled ? tag : null) };
            chunks = engines.StreamAsync(job.Engine, job.VoiceDirectory, job.Samples, request, timeout.Token).GetAsyncEnumerator(timeout.Token);
            var first = chunks.MoveNextAsync().AsTask();
            // Both end before anything else happens; an engine failure is reported ahead of a log failure.
            await Task.WhenAll(first, logged);
            if (!first.Result)
            {
                throw new EngineInputException("The engine produced no audio for this text: give words it can say.", "text");
            }

            metrics.TimeToFirstAudio(job.Engine, TimeProvider.System.GetElapsedTime(arrived));
            return new SpeechStream(this, job, clip, info.SampleRate, chunks, lease, timeout, cutOff, cancellationToken);
        }
        catch (Exception e)
        {
            if (chunks is not null)
            {
                await chunks.DisposeAsync();
            }

            lease?.Dispose();
            var timedOut = timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested;
            timeout.Dispose();
            switch (e)
            {
                case SpeechRejectedException r:
                    metrics.Rejected(Reason(r.Reason));
                    throw;
                case OperationCanceledException when timedOut:
                    metrics.Rejected(Reason(RejectionReason.Timeout));
                    throw new SpeechRejectedException(RejectionReason.Timeout, $"No audio within {settings.Speech.RequestTimeoutSeconds:0} s (Timbre:Speech:RequestTimeoutSeconds); the engine is overloaded or the text too long.", null);
                case EngineFailedException:
                    metrics.EngineError(job.Engine);
                    metrics.StreamEnded(job.Engine, "failed");
                    throw;
                default:
                    throw;
            }
        }
    }

    /// <summary>The metric label for a rejection reason.</summary>
    public static string Reason(RejectionReason reason) => reason switch
    {
        RejectionReason.QueueFull => "queue_full",
        RejectionReason.Draining => "draining",
        RejectionReason.RateLimited => "rate_limited",
        RejectionReason.Timeout => "timeout",
        RejectionReason.SlowClient => "slow_client",
        _ => "other",
    };

    private void Ended(SpeechJob job, string clip, string outcome, int chunks, double audioSeconds, string audioSha256, TimeSpan elapsed)
    {
        metrics.StreamEnded(job.Engine, outcome);
        // A node's request has no clip here (its front logs it).
        if (outcome == "completed" && !job.ForNode)
        {
            try
            {
                generations.Finish(clip, audioSha256, audioSeconds);
            }
            catch (Microsoft.Data.Sqlite.SqliteException e)
            {
                // The clip is logged already (it is found by its mark); only its audio hash is missing.
                LogFinishFailed(logger, clip, e);
            }
        }

        if (outcome == "completed" && audioSeconds > 0)
        {
            metrics.RealTimeFactor(job.Engine, elapsed.TotalSeconds / audioSeconds);
        }

        if (outcome == "failed")
        {
            metrics.EngineError(job.Engine);
        }

        LogEnded(logger, job.Engine, job.Voice.Id, outcome, chunks, audioSeconds);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "The generation log could not record the audio hash of {Clip}")]
    private static partial void LogFinishFailed(ILogger logger, string clip, Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Speech stream on {Engine} for voice {Voice} ended {Outcome}: {Chunks} engine chunks, {AudioSeconds:0.00} s of audio")]
    private static partial void LogEnded(ILogger logger, string engine, string voice, string outcome, int chunks, double audioSeconds);
}
