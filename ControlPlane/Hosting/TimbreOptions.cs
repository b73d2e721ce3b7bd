using Microsoft.Extensions.Options;
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
    public bool Exists(string engine) => Names.Contains(engine, StringComparer.Ordinal);

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

    /// <summary>openai-speech: vLLM-Omni serving Qwen3-TTS, or any server with its POST /v1/audio/speech contract.</summary>
    public string Kind { get; set; } = "";

    /// <summary>Base URLs of the servers; a request goes to the least loaded healthy one.</summary>
    public List<string> Endpoints { get; set; } = [];

    /// <summary>Sent as a bearer token (vLLM's --api-key).</summary>
    public string? ApiKey { get; set; }

    /// <summary>The model the servers run (a Qwen3-TTS checkpoint id or folder): it decides cloning, speakers or voice design.</summary>
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

/// <summary>Rejects a configuration that cannot work, saying which key to change.</summary>
public sealed partial class TimbreOptionsValidator(IConfiguration configuration) : IValidateOptions<TimbreOptions>
{
    public ValidateOptionsResult Validate(string? name, TimbreOptions options)
    {
        var errors = new List<string>();
        ValidateSpeech(options.Speech, errors);
        ValidateAuth(options.Auth, configuration, errors);
        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            errors.Add("Timbre:DataDirectory is empty: set it to a writable folder for the voice library.");
        }

        ValidateRemote(options.Engine, errors);
        if (!string.IsNullOrWhiteSpace(options.Cluster.Redis))
        {
            try
            {
                StackExchange.Redis.ConfigurationOptions.Parse(options.Cluster.Redis);
            }
            catch (ArgumentException e)
            {
                errors.Add($"Timbre:Cluster:Redis is not a Redis connection string ({e.Message}): use host:port, for example redis:6379.");
            }
        }

        if (!options.Engine.Exists(options.Engine.Default))
        {
            errors.Add($"Timbre:Engine:Default is '{options.Engine.Default}': use one of {string.Join(", ", options.Engine.Names)}.");
        }

        if (options.Engine.IdleUnloadMinutes < 0 || double.IsNaN(options.Engine.IdleUnloadMinutes))
        {
            errors.Add("Timbre:Engine:IdleUnloadMinutes must be 0 (never unload) or more.");
        }

        if (options.Engine.Qwen3.Dtype is not ("bfloat16" or "float16" or "float32"))
        {
            errors.Add($"Timbre:Engine:Qwen3:Dtype is '{options.Engine.Qwen3.Dtype}': use bfloat16, float16 or float32.");
        }

        if (options.Engine.Qwen3.MaxChars is < 20 or > 1000)
        {
            errors.Add("Timbre:Engine:Qwen3:MaxChars must be between 20 and 1000.");
        }

        if (string.IsNullOrWhiteSpace(options.Python.Executable))
        {
            errors.Add("Timbre:Python:Executable is empty: set it to /usr/bin/python3 or a venv's bin/python.");
        }

        if (options.Python.Threads is < 0 or > 512)
        {
            errors.Add($"Timbre:Python:Threads is {options.Python.Threads}: use 0 (one per stream the engines may run at once, plus two) or a number up to 512.");
        }

        if (options.Limits.MaxTextLength is < 1 or > 1_000_000)
        {
            errors.Add("Timbre:Limits:MaxTextLength must be between 1 and 1000000.");
        }

        if (options.Limits.MaxUploadBytes < 1024)
        {
            errors.Add("Timbre:Limits:MaxUploadBytes must be at least 1024.");
        }

        if (options.Limits.MaxSampleSeconds is < 1 or > 600)
        {
            errors.Add("Timbre:Limits:MaxSampleSeconds must be between 1 and 600.");
        }

        if (options.Limits.MaxFilesPerVoice is < 1 or > 100)
        {
            errors.Add("Timbre:Limits:MaxFilesPerVoice must be between 1 and 100.");
        }

        if (options.Limits.RequestsPerMinute is < 0 or > 1_000_000)
        {
            errors.Add("Timbre:Limits:RequestsPerMinute must be between 0 (no limit) and 1000000.");
        }

        if (options.FineTuning.CpuCores < 1 || options.FineTuning.EvaluationClips is < 1 or > 200 || options.FineTuning.MaxDatasetBytes < 1024)
        {
            errors.Add("Timbre:FineTuning: CpuCores must be at least 1, EvaluationClips 1–200 and MaxDatasetBytes at least 1024.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void ValidateRemote(EngineOptions engines, List<string> errors)
    {
        foreach (var (name, remote) in engines.Remote)
        {
            var key = $"Timbre:Engine:Remote:{name}";
            if (EngineOptions.Known.Contains(name, StringComparer.OrdinalIgnoreCase) || !RemoteName().IsMatch(name))
            {
                errors.Add($"{key}: a remote engine's name must be lower-case letters, digits and dashes (at most 32), and not {string.Join(", ", EngineOptions.Known)}.");
            }

            if (remote.Kind != RemoteEngineOptions.OpenAiSpeech)
            {
                errors.Add($"{key}:Kind is '{remote.Kind}': use {RemoteEngineOptions.OpenAiSpeech} (vLLM-Omni or a server with its /v1/audio/speech contract).");
            }

            if (remote.Endpoints.Count == 0)
            {
                errors.Add($"{key}:Endpoints is empty: list the servers' base URLs ({key}:Endpoints:0=http://gpu-box:8091).");
            }

            foreach (var endpoint in remote.Endpoints)
            {
                if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || !string.IsNullOrEmpty(uri.Query))
                {
                    errors.Add($"{key}:Endpoints holds '{endpoint}': use an http:// or https:// base URL such as http://gpu-box:8091.");
                }
            }

            if (remote.Concurrency is < 1 or > 256)
            {
                errors.Add($"{key}:Concurrency is {remote.Concurrency}: use 1 to 256 streams per endpoint (at most the server's --max-num-seqs).");
            }

            if (remote.FirstAudioTimeoutSeconds is <= 0 or > 600 || double.IsNaN(remote.FirstAudioTimeoutSeconds)
                || remote.BreakSeconds is < 0.1 or > 3600 || double.IsNaN(remote.BreakSeconds))
            {
                errors.Add($"{key}: FirstAudioTimeoutSeconds must be more than 0 and at most 600, BreakSeconds between 0.1 and 3600.");
            }
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex("^[a-z][a-z0-9-]{0,31}$")]
    private static partial System.Text.RegularExpressions.Regex RemoteName();

    private static void ValidateSpeech(SpeechOptions speech, List<string> errors)
    {
        foreach (var (engine, n) in speech.Concurrency)
        {
            if (!EngineOptions.Known.Contains(engine, StringComparer.OrdinalIgnoreCase))
            {
                errors.Add($"Timbre:Speech:Concurrency:{engine} names no engine: use {string.Join(", ", EngineOptions.Known)}.");
            }
            else if (n is < 1 or > 256)
            {
                errors.Add($"Timbre:Speech:Concurrency:{engine} is {n}: it must be between 1 and 256.");
            }
        }

        if (speech.QueueLength is < 0 or > 100_000)
        {
            errors.Add("Timbre:Speech:QueueLength must be between 0 and 100000.");
        }

        if (speech.RequestTimeoutSeconds is <= 0 or > 86_400 || double.IsNaN(speech.RequestTimeoutSeconds))
        {
            errors.Add("Timbre:Speech:RequestTimeoutSeconds must be more than 0 and at most 86400.");
        }

        if (speech.WriteStallSeconds is <= 0 or > 3_600 || double.IsNaN(speech.WriteStallSeconds))
        {
            errors.Add("Timbre:Speech:WriteStallSeconds must be more than 0 and at most 3600.");
        }

        if (speech.DrainTimeoutSeconds is < 0 or > 3_600 || double.IsNaN(speech.DrainTimeoutSeconds))
        {
            errors.Add("Timbre:Speech:DrainTimeoutSeconds must be between 0 and 3600.");
        }
    }

    private static void ValidateAuth(AuthOptions auth, IConfiguration configuration, List<string> errors)
    {
        if (auth.ApiKeys.Any(k => string.IsNullOrWhiteSpace(k) || k.Length < AuthOptions.MinimumKeyLength || k.Any(char.IsWhiteSpace)))
        {
            errors.Add($"Timbre:Auth:ApiKeys holds a key shorter than {AuthOptions.MinimumKeyLength} characters or with spaces: use long random keys, for example from `openssl rand -hex 24`.");
        }

        if (auth.FailedAttemptsPerMinute is < 0 or > 100_000)
        {
            errors.Add("Timbre:Auth:FailedAttemptsPerMinute must be between 0 (no limit) and 100000.");
        }

        foreach (var origin in auth.AllowedOrigins)
        {
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.AbsolutePath != "/" || uri.Scheme is not ("http" or "https"))
            {
                errors.Add($"Timbre:Auth:AllowedOrigins has '{origin}': an origin is scheme://host[:port], such as http://studio.local:8080.");
            }
        }

        var hosts = (configuration["AllowedHosts"] ?? "*").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (Listening.NonLoopback(configuration) is { } listening && hosts.All(Listening.IsLoopback))
        {
            errors.Add($"Timbre would listen on {listening}, but AllowedHosts ({string.Join(";", hosts)}) answers only to loopback names, so other machines would get 400. Set AllowedHosts to the names clients use, for example AllowedHosts=\"desktop.local;192.168.1.20\".");
        }

        if (auth.ApiKeys.Count == 0 && !auth.AllowInsecure && Listening.NonLoopback(configuration) is { } exposed)
        {
            errors.Add($"Timbre would listen on {exposed}, reachable from the network, with no API keys. Set Timbre:Auth:ApiKeys (for example Timbre__Auth__ApiKeys__0=$(openssl rand -hex 24)), or listen on 127.0.0.1, or set Timbre:Auth:AllowInsecure=true to let anyone on the network use it.");
        }
    }
}

/// <summary>The addresses Kestrel is configured to listen on, as far as configuration says.</summary>
public static class Listening
{
    /// <summary>The first configured URL that is not loopback, or null when all are.</summary>
    public static string? NonLoopback(IConfiguration configuration)
    {
        var urls = (configuration["urls"] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Concat(configuration.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"]).OfType<string>());
        var ports = (configuration["http_ports"] ?? "") + ";" + (configuration["https_ports"] ?? "");
        if (ports.Split(';', StringSplitOptions.RemoveEmptyEntries).Length > 0)
        {
            // http_ports binds every interface.
            return $"*:{ports.Trim(';')}";
        }

        return urls.FirstOrDefault(u => !IsLoopback(u));
    }

    public static bool IsLoopback(string url)
    {
        var host = url.Split("://", 2) is [_, var rest] ? rest : url;
        host = host.Split('/')[0];
        host = host.StartsWith('[') ? host[..(host.IndexOf(']') + 1)] : host.Split(':')[0];
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip));
    }
}
