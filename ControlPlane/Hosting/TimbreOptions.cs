using Timbre.PyRuntime;

namespace Timbre.ControlPlane.Hosting;

/// <summary>Timbre's configuration section ("Timbre").</summary>
public sealed class TimbreOptions
{
    public const string Section = "Timbre";

    /// <summary>Where voices, caches and jobs live.</summary>
    public string DataDirectory { get; set; } = "";

    public EngineOptions Engine { get; set; } = new();

    public PythonOptions Python { get; set; } = new();

    public LimitOptions Limits { get; set; } = new();

    public SpeechOptions Speech { get; set; } = new();

    public AuthOptions Auth { get; set; } = new();

    public FineTuningOptions FineTuning { get; set; } = new();

    public ProvenanceOptions Provenance { get; set; } = new();

    public ClusterOptions Cluster { get; set; } = new();
}

/// <summary>Several Timbre nodes behind one load balancer (README, "Scaling out").</summary>
public sealed class ClusterOptions
{
    /// <summary>
    /// A StackExchange.Redis connection string (host:port[,password=…]): the SignalR backplane, and the
    /// channel and keys that carry a hub stream's cancel and RequestId across nodes. Empty: one node.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary>
    /// A secret that lets other Timbre nodes use this one as a worker (POST /v1/cluster/speech, unmarked PCM
    /// that the front marks): their Timbre:Engine:Remote:&lt;name&gt;:ApiKey. Empty: this node serves no node.
    /// </summary>
    public string? NodeKey { get; set; }

    /// <summary>
    /// This node's name among front nodes that share one data directory: the jobs it runs carry it, so a
    /// node that starts interrupts only its own earlier jobs. Empty: the machine's host name.
    /// </summary>
    public string? NodeName { get; set; }

    /// <summary>
    /// A node sharing the data directory that has not been seen for this long is taken for stopped: the
    /// jobs it was running are marked interrupted by the others (each node notes it is alive every quarter of this).
    /// </summary>
    public int NodeTimeoutSeconds { get; set; } = 20;

    /// <summary>
    /// On a worker: days that a copy of a sample another node sent (and its voice's caches) is kept after
    /// the last request that used it; the front sends it again when next it is needed.
    /// </summary>
    public double KeepUnusedDays { get; set; } = 30;

    /// <summary>
    /// On a worker: the largest fine-tuned version (all of its folder's files) another node may send. A
    /// Qwen3-TTS or XTTS version is a few gigabytes; a classic one is kilobytes.
    /// </summary>
    public long MaxModelBytes { get; set; } = 32L * 1024 * 1024 * 1024;

    /// <summary>The name this node's jobs carry.</summary>
    public string Node => string.IsNullOrWhiteSpace(NodeName) ? Environment.MachineName : NodeName.Trim();
}

/// <summary>The provenance mark every clip carries (README, "Provenance mark").</summary>
public sealed class ProvenanceOptions
{
    /// <summary>
    /// Mark every clip. The owner may turn it off for the whole server (logged as critical at start);
    /// no request can turn it off for itself.
    /// </summary>
    public bool Enabled { get; set; } = true;
}

/// <summary>Fine-tuning jobs: what they may use of the machine and how much data they take.</summary>
public sealed class FineTuningOptions
{
    /// <summary>Cores a CPU job (preparation, classic training and evaluation) is pinned to; the rest serve speech.</summary>
    public int CpuCores { get; set; } = 1;

    /// <summary>Held-out sentences each evaluation speaks with both voices.</summary>
    public int EvaluationClips { get; set; } = 12;

    /// <summary>Largest dataset upload (all recordings together).</summary>
    public long MaxDatasetBytes { get; set; } = 8L * 1024 * 1024 * 1024;

    /// <summary>Free space a dataset upload must leave on the data directory's disk.</summary>
    public long MinFreeBytes { get; set; } = 1L * 1024 * 1024 * 1024;

    /// <summary>Qwen3-TTS's finetuning/ folder (prepare_data.py, sft_12hz.py); ops/install-gpu fetches it.</summary>
    public string? Qwen3Scripts { get; set; }

    /// <summary>The local Qwen3-TTS-Tokenizer-12Hz folder prepare_data.py encodes with.</summary>
    public string? Qwen3Tokenizer { get; set; }
}

/// <summary>The speech scheduler: how much runs at once, how much may wait, how long anything may take.</summary>
public sealed class SpeechOptions
{
    /// <summary>
    /// Streams each engine runs at once. The classic engine interleaves sentence by sentence on the
    /// Python thread at about 30× real time, so sixteen streams still each run faster than playback;
    /// a GPU engine runs one generation at a time unless it batches.
    /// </summary>
    public Dictionary<string, int> Concurrency { get; set; } = new(StringComparer.OrdinalIgnoreCase)
    {
        ["classic"] = 16,
        ["qwen3"] = 1,
        ["xtts"] = 1,
    };

    /// <summary>Requests that may wait per engine; beyond this a request is refused at once with 429.</summary>
    public int QueueLength { get; set; } = 64;

    /// <summary>The longest a request may take, waiting and writing the response included.</summary>
    public double RequestTimeoutSeconds { get; set; } = 300;

    /// <summary>
    /// How long a client may accept no audio before it is cut off and its engine slot freed. A player
    /// reading in real time takes a chunk every 160 ms or so; ten seconds of nothing is a client that
    /// stopped reading (or a network that died), and it must not hold an engine meanwhile.
    /// </summary>
    public double WriteStallSeconds { get; set; } = 10;

    /// <summary>How long streams in flight may take to finish after SIGTERM.</summary>
    public double DrainTimeoutSeconds { get; set; } = 30;

    /// <summary>The voice used when an OpenAI-style request names one Timbre does not have (alloy, nova, …).</summary>
    public string? DefaultVoice { get; set; }

    public int ConcurrencyOf(string engine) => Concurrency.TryGetValue(engine, out var n) ? n : 1;
}

/// <summary>Who may call Timbre.</summary>
public sealed class AuthOptions
{
    /// <summary>Accepted API keys. Empty turns auth off, which is allowed only on loopback.</summary>
    public List<string> ApiKeys { get; set; } = [];

    /// <summary>Serve without keys on a non-loopback address. Anyone on the network can then use Timbre.</summary>
    public bool AllowInsecure { get; set; }

    /// <summary>Browser origins besides Timbre's own that may call the API (a dashboard served elsewhere).</summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>
    /// Wrong API keys one remote address may send per minute; past it every key from that address gets 429
    /// until the minute is over, so keys cannot be guessed online. 0 turns the limit off.
    /// </summary>
    public int FailedAttemptsPerMinute { get; set; } = 10;

    public const int MinimumKeyLength = 16;
}

/// <summary>The engines: which serves requests that name none, and each one's settings.</summary>
public sealed class EngineOptions
{
    public static readonly IReadOnlyList<string> Known = ["classic", "qwen3", "xtts"];

    public string Default { get; set; } = "classic";

    /// <summary>A GPU engine unused this long is unloaded to free the GPU; 0 keeps it loaded.</summary>
    public double IdleUnloadMinutes { get; set; } = 15;

    public ClassicEngineOptions Classic { get; set; } = new();

    public Qwen3EngineOptions Qwen3 { get; set; } = new();

    public XttsEngineOptions Xtts { get; set; } = new();

    /// <summary>Engines that run elsewhere, by the name requests use (Timbre:Engine:Remote:&lt;name&gt;).</summary>
    public Dictionary<string, RemoteEngineOptions> Remote { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Every engine a request may name: the local ones, then the remote ones.</summary>
    public IEnumerable<string> Names => Known.Concat(Remote.Keys.Order(StringComparer.Ordinal));

    /// <summary>True for a local or a configured remote engine.</summary>
    public bool Exists(string engine) => Known.Contains(engine, StringComparer.Ordinal) || Remote.Keys.Contains(engine, StringComparer.Ordinal);

    /// <summary>The engine's settings as the Python engine's constructor takes them.</summary>
    public object For(string engine) => engine switch
    {
        "qwen3" => Qwen3,
        "xtts" => Xtts,
        _ => Classic,
    };
}

/// <summary>An engine served by other machines (README, "Scaling out").</summary>
public sealed class RemoteEngineOptions
{
    public const string OpenAiSpeech = "openai-speech";

    public const string Timbre = "timbre";

    /// <summary>
    /// openai-speech: vLLM-Omni serving Qwen3-TTS, or any server with its POST /v1/audio/speech contract;
    /// timbre: other Timbre nodes (workers with Timbre:Cluster:NodeKey set).
    /// </summary>
    public string Kind { get; set; } = "";

    /// <summary>Base URLs of the servers; a request goes to the least loaded healthy one.</summary>
    public List<string> Endpoints { get; set; } = [];

    /// <summary>Sent as a bearer token: vLLM's --api-key, or a Timbre worker's Timbre:Cluster:NodeKey.</summary>
    public string? ApiKey { get; set; }

    /// <summary>
    /// openai-speech: the model the servers run (a Qwen3-TTS checkpoint id or folder), which decides cloning,
    /// speakers or voice design. timbre: the worker's engine (classic, qwen3 or xtts; classic when empty).
    /// </summary>
    public string Model { get; set; } = "";

    /// <summary>Streams one endpoint runs at once; keep it at or below the server's --max-num-seqs.</summary>
    public int Concurrency { get; set; } = 1;

    /// <summary>An endpoint that sends no audio this long after a request is given up for the next one.</summary>
    public double FirstAudioTimeoutSeconds { get; set; } = 20;

    /// <summary>How long an endpoint that keeps failing is skipped before a request tries it again.</summary>
    public double BreakSeconds { get; set; } = 15;
}

public sealed class ClassicEngineOptions
{
    /// <summary>The flite voice reshaped towards each Timbre voice: rms, slt, awb or kal16.</summary>
    public string Voice { get; set; } = "rms";
}

/// <summary>Qwen3-TTS (package qwen-tts). The model decides the mode: Base clones, CustomVoice speaks its speakers, VoiceDesign follows instructions.</summary>
public sealed class Qwen3EngineOptions
{
    /// <summary>A Hugging Face id or, on a machine without the hub, the folder ops/install-gpu downloaded it to; a fine-tuned checkpoint folder works too.</summary>
    public string Model { get; set; } = "Qwen/Qwen3-TTS-12Hz-1.7B-Base";

    /// <summary>bfloat16, float16 or float32.</summary>
    public string Dtype { get; set; } = "bfloat16";

    public string Device { get; set; } = "cuda:0";

    /// <summary>auto (flash-attn when importable and the dtype is half precision), or an attn_implementation such as sdpa.</summary>
    public string Attention { get; set; } = "auto";

    /// <summary>The speaker of a CustomVoice or fine-tuned model when the request names none.</summary>
    public string? Speaker { get; set; }

    /// <summary>A fixed seed for every request; unset, each request draws one (and keeps it for all its sentences).</summary>
    public int? Seed { get; set; }

    /// <summary>The longest piece generated at once, in characters.</summary>
    public int MaxChars { get; set; } = 160;
}

/// <summary>XTTS-v2 (package coqui-tts), loaded with the low-level API from a local folder.</summary>
public sealed class XttsEngineOptions
{
    /// <summary>The folder with config.json, model.pth and vocab.json (ops/install-gpu downloads it).</summary>
    public string ModelDir { get; set; } = "";

    /// <summary>A fine-tuned run's best_model.pth, loaded with the base folder's config and vocabulary.</summary>
    public string? Checkpoint { get; set; }

    public string Device { get; set; } = "cuda";

    /// <summary>The XTTS-v2 weights are under the Coqui Public Model License (non-commercial only); true accepts it.</summary>
    public bool AcceptLicense { get; set; }
}

/// <summary>Input limits; each is reported to the caller when exceeded.</summary>
public sealed class LimitOptions
{
    public int MaxTextLength { get; set; } = 5000;

    public long MaxUploadBytes { get; set; } = 10 * 1024 * 1024;

    public double MaxSampleSeconds { get; set; } = 60;

    public int MaxFilesPerVoice { get; set; } = 10;

    /// <summary>Requests per minute per API key (bursts up to this many); 0 turns the limit off.</summary>
    public int RequestsPerMinute { get; set; } = 120;
}
