using Microsoft.Extensions.Options;

namespace Timbre.ControlPlane.Hosting;

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

        if (options.Cluster.NodeKey is { } nodeKey && nodeKey.Length > 0)
        {
            if (nodeKey.Length < 24 || nodeKey.Trim() != nodeKey)
            {
                errors.Add("Timbre:Cluster:NodeKey is too short: use at least 24 random characters (openssl rand -hex 24), with no spaces at either end.");
            }

            if (options.Auth.ApiKeys.Contains(nodeKey))
            {
                errors.Add("Timbre:Cluster:NodeKey is also one of Timbre:Auth:ApiKeys: give the nodes a secret of their own, since it buys unmarked audio.");
            }
        }

        if (!string.IsNullOrWhiteSpace(options.Cluster.NodeName) && !NodeNamePattern().IsMatch(options.Cluster.NodeName.Trim()))
        {
            errors.Add($"Timbre:Cluster:NodeName is '{options.Cluster.NodeName}': use 1-64 letters, digits, '.', '_' or '-', one name per node.");
        }

        if (!(options.Cluster.KeepUnusedDays is >= 0.01 and <= 36500))
        {
            errors.Add($"Timbre:Cluster:KeepUnusedDays is {options.Cluster.KeepUnusedDays}: use a number of days between 0.01 and 36500 (30 is the default).");
        }

        if (options.Cluster.MaxModelBytes < 1024 * 1024)
        {
            errors.Add($"Timbre:Cluster:MaxModelBytes is {options.Cluster.MaxModelBytes}: use at least 1048576 (1 MB); a GPU engine's version is gigabytes (32 GB is the default).");
        }

        if (options.Cluster.NodeTimeoutSeconds < 6)
        {
            errors.Add($"Timbre:Cluster:NodeTimeoutSeconds is {options.Cluster.NodeTimeoutSeconds}: use 6 or more (a node notes it is alive every quarter of it, and its runner looks every 2 s; 20 is the default).");
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

            if (remote.Kind is not (RemoteEngineOptions.OpenAiSpeech or RemoteEngineOptions.Timbre))
            {
                errors.Add($"{key}:Kind is '{remote.Kind}': use {RemoteEngineOptions.OpenAiSpeech} (vLLM-Omni or a server with its /v1/audio/speech contract) or {RemoteEngineOptions.Timbre} (other Timbre nodes).");
            }

            if (remote.Kind == RemoteEngineOptions.Timbre && remote.Model is not ("" or "classic" or "qwen3" or "xtts"))
            {
                errors.Add($"{key}:Model is '{remote.Model}': for Timbre workers name the worker's engine, classic, qwen3 or xtts.");
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

    [System.Text.RegularExpressions.GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial System.Text.RegularExpressions.Regex NodeNamePattern();

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
