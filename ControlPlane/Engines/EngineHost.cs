using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Provenance;
using Timbre.PyRuntime;

namespace Timbre.ControlPlane.Engines;

/// <summary>The engines, as .NET sees them: load, prepare voices, stream speech. Knows no HTTP.</summary>
public sealed partial class EngineHost(
    IOptions<TimbreOptions> options,
    ProvenanceKey provenanceKey,
    ILogger<EngineHost> logger,
    ILogger<PythonRuntime> pythonLogger)
{
    private const string HostModule = "timbre.host";

    /// <summary>
    /// Chunks an engine may run ahead of a slow client. Each is one sentence (a second or two of
    /// audio), so four keep the next sentences ready without holding a whole long text in memory.
    /// </summary>
    private const int StreamReadAhead = 4;

    private readonly ConcurrentDictionary<string, Task<EngineInfo>> loaded = new();
    private readonly ConcurrentDictionary<string, EngineDescription> descriptions = new();
    private readonly ConcurrentDictionary<string, EngineUse> use = new();
    private readonly TimbreOptions settings = options.Value;
    private readonly Dictionary<string, RemoteEngine> remotes = RemoteEnginesOf(options.Value.Engine, logger);
    private PythonRuntime? runtime;
    private int activeStreams;
    private volatile bool ready;

    /// <summary>True once the default engine is loaded.</summary>
    public bool IsReady => ready;

    /// <summary>Speech streams whose engine generator is still open.</summary>
    public int ActiveStreams => Volatile.Read(ref activeStreams);

    public string DefaultEngine => settings.Engine.Default;

    /// <summary>Every engine a request may name, local and remote.</summary>
    public IEnumerable<string> Names => settings.Engine.Names;

    public bool Exists(string engine) => settings.Engine.Exists(engine);

    /// <summary>True for an engine served by other machines (Timbre:Engine:Remote).</summary>
    public bool IsRemote(string engine) => remotes.ContainsKey(engine);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        runtime = await PythonRuntime.GetOrStartAsync(settings.Python, pythonLogger).WaitAsync(cancellationToken);
        LogPython(logger, runtime.Version, runtime.Prefix);
        await Translate(runtime.InvokeAsync(py =>
        {
            using var _ = py.Call(HostModule, "provenance_start", provenanceKey.Path);
            return true;
        }, cancellationToken));
        if (!settings.Provenance.Enabled)
        {
            LogMarkingOff(logger);
        }

        foreach (var name in EngineOptions.Known)
        {
            var description = await DescribeAsync(name, cancellationToken);
            LogEngineDescribed(logger, name, description.Available ? "available" : $"not available: {description.Reason ?? "no reason given"}");
        }

        await DescribeRemotesAsync(cancellationToken);
        if (Describe(DefaultEngine) is { Available: false } unusable)
        {
            throw new InvalidOperationException(
                $"Timbre:Engine:Default is '{DefaultEngine}', which cannot run here: {unusable.Reason}. Run ops/install-gpu, or set Timbre:Engine:Default to classic.");
        }

        var info = await LoadAsync(DefaultEngine, cancellationToken);
        LogEngineLoaded(logger, info.Name, info.SampleRate);
        ready = true;
    }

    /// <summary>What an engine is and whether it can run here, as described at start-up (a remote one: now); null for an unknown name.</summary>
    public EngineDescription? Describe(string engine)
    {
        var description = descriptions.GetValueOrDefault(engine);
        return description is not null && remotes.TryGetValue(engine, out var remote) ? WithState(description, remote) : description;
    }

    /// <summary>Every engine with its availability and whether it is loaded now.</summary>
    public IReadOnlyList<EngineDescription> List() =>
        Names.Select(Describe).OfType<EngineDescription>()
            .Select(d => d with { Loaded = d.Loaded || (loaded.TryGetValue(d.Name, out var t) && t.IsCompletedSuccessfully), Default = d.Name == DefaultEngine })
            .ToList();

    private async Task<EngineDescription> DescribeAsync(string engine, CancellationToken cancellationToken)
    {
        var options = OptionsJson(engine);
        var json = await Translate(Runtime.InvokeAsync(py =>
        {
            using var result = py.Call(HostModule, "describe", engine, options);
            return result.AsString();
        }, cancellationToken));
        var description = JsonSerializer.Deserialize<EngineDescription>(json, JsonOptions)!;
        descriptions[engine] = description;
        return description;
    }

    /// <summary>Loads an engine once; concurrent callers share the same load, and a failed load is retried next time.</summary>
    public Task<EngineInfo> LoadAsync(string engine, CancellationToken cancellationToken)
    {
        if (remotes.ContainsKey(engine))
        {
            // Loaded where it runs; its description holds what a caller needs.
            return Task.FromResult(new EngineInfo(engine, RemoteEngine.SampleRate, descriptions.GetValueOrDefault(engine)?.Languages ?? []));
        }

        var python = Runtime;
        Touch(engine);
        var task = loaded.GetOrAdd(engine, name =>
        {
            var options = OptionsJson(name);
            return python.InvokeAsync(py =>
            {
                using var result = py.Call(HostModule, "load", name, options);
                return JsonSerializer.Deserialize<EngineInfo>(result.AsString(), JsonOptions)!;
            }, CancellationToken.None);
        });
        return ForgetOnFailure(engine, task).WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Unloads the GPU engines nobody has used for Timbre:Engine:IdleUnloadMinutes, freeing the GPU
    /// for other work; the next request loads them again.
    /// </summary>
    public async Task UnloadIdleAsync(CancellationToken cancellationToken)
    {
        var idleAfter = TimeSpan.FromMinutes(settings.Engine.IdleUnloadMinutes);
        if (idleAfter <= TimeSpan.Zero)
        {
            return;
        }

        foreach (var (engine, state) in use)
        {
            if (Describe(engine) is not { Gpu: true } || Volatile.Read(ref state.Active) > 0
                || TimeProvider.System.GetElapsedTime(Volatile.Read(ref state.LastUsed)) < idleAfter
                || !loaded.TryGetValue(engine, out var load) || !load.IsCompletedSuccessfully
                || !loaded.TryRemove(new KeyValuePair<string, Task<EngineInfo>>(engine, load)))
            {
                continue;
            }

            // A request that already holds the loaded engine still works: the Python host loads it
            // again on demand with the same settings.
            await Translate(Runtime.InvokeAsync(py =>
            {
                using var result = py.Call(HostModule, "unload", engine);
                return result.IsTrue();
            }, cancellationToken));
            LogEngineUnloaded(logger, engine, settings.Engine.IdleUnloadMinutes);
        }
    }

    private EngineUse Touch(string engine)
    {
        var state = use.GetOrAdd(engine, _ => new EngineUse());
        Volatile.Write(ref state.LastUsed, TimeProvider.System.GetTimestamp());
        return state;
    }

    /// <summary>The engine's settings as its Python class takes them.</summary>
    public string OptionsJson(string engine) => JsonSerializer.Serialize(settings.Engine.For(engine), settings.Engine.For(engine).GetType(), OptionJson);

    private static readonly JsonSerializerOptions OptionJson = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    private sealed class EngineUse
    {
        public long LastUsed;
        public int Active;
    }

    private async Task<EngineInfo> ForgetOnFailure(string engine, Task<EngineInfo> load)
    {
        try
        {
            return await Translate(load);
        }
        catch
        {
            loaded.TryRemove(new KeyValuePair<string, Task<EngineInfo>>(engine, load));
            throw;
        }
    }

    /// <summary>Builds or reuses the engine's cached preparation of a voice; returns its summary.</summary>
    public async Task<Dictionary<string, JsonElement>> PrepareVoiceAsync(
        string engine, string voiceDirectory, IReadOnlyList<EngineSample> samples, CancellationToken cancellationToken)
    {
        if (remotes.ContainsKey(engine))
        {
            // A remote engine prepares a voice where it runs, from what each request sends.
            return [];
        }

        await LoadAsync(engine, cancellationToken);
        var samplesJson = JsonSerializer.Serialize(samples, JsonOptions);
        var json = await Translate(Runtime.InvokeAsync(py =>
        {
            using var result = py.Call(HostModule, "prepare_voice", engine, voiceDirectory, samplesJson);
            return result.AsString();
        }, cancellationToken));
        return JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(json)!;
    }

    /// <summary>
    /// Scores, trims and transcribes a new voice's samples and writes its prompt and reference (see
    /// timbre/enrol.py). Runs on a Python worker thread, polled, so speech streams keep flowing.
    /// </summary>
    public async Task<EnrolmentReport> EnrolAsync(string voiceDirectory, IReadOnlyList<EnrolmentSample> samples, string? language, CancellationToken cancellationToken)
    {
        var samplesJson = JsonSerializer.Serialize(samples, JsonOptions);
        var job = await Translate(Runtime.InvokeAsync(py =>
        {
            using var result = py.Call(HostModule, "enrol_start", voiceDirectory, samplesJson, language ?? "");
            return result.AsString();
        }, cancellationToken));
        try
        {
            while (true)
            {
                await Task.Delay(EnrolmentPoll, cancellationToken);
                var json = await Translate(Runtime.InvokeAsync(py =>
                {
                    using var result = py.Call(HostModule, "enrol_result", job);
                    return result.AsString();
                }, CancellationToken.None));
                if (json.Length > 0)
                {
                    job = "";
                    var report = JsonSerializer.Deserialize<EnrolmentReport>(json, JsonOptions)!;
                    return report with { Json = CamelCase(JsonSerializer.Deserialize<JsonElement>(json)).Deserialize<JsonElement>() };
                }
            }
        }
        finally
        {
            if (job.Length > 0)
            {
                await Runtime.InvokeAsync(py =>
                {
                    using var _ = py.Call(HostModule, "enrol_forget", job);
                    return true;
                }, CancellationToken.None);
            }
        }
    }

    private static readonly TimeSpan EnrolmentPoll = TimeSpan.FromMilliseconds(50);

    /// <summary>Python's snake_case keys in the API's camelCase, at every depth.</summary>
    private static JsonNode? CamelCase(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => new JsonObject(element.EnumerateObject().Select(p => KeyValuePair.Create(CamelCase(p.Name), CamelCase(p.Value)))),
        JsonValueKind.Array => new JsonArray(element.EnumerateArray().Select(CamelCase).ToArray()),
        _ => JsonValue.Create(element),
    };

    private static string CamelCase(string snake)
    {
        var parts = snake.Split('_');
        return parts[0] + string.Concat(parts.Skip(1).Where(p => p.Length > 0).Select(p => char.ToUpperInvariant(p[0]) + p[1..]));
    }

    /// <summary>Looks for this install's provenance mark in a decoded WAV file.</summary>
    public async Task<MarkSearch> DetectMarkAsync(string wavPath, CancellationToken cancellationToken)
    {
        var json = await Translate(Runtime.InvokeAsync(py =>
        {
            using var result = py.Call(HostModule, "provenance_detect", provenanceKey.Path, wavPath);
            return result.AsString();
        }, cancellationToken));
        return JsonSerializer.Deserialize<MarkSearch>(json, JsonOptions)!;
    }

    /// <summary>Float32 mono chunks at the engine's rate, carrying the provenance mark (<see cref="EngineSpeechRequest.Mark"/>); the first arrives after one sentence.</summary>
    public async IAsyncEnumerable<float[]> StreamAsync(
        string engine,
        string voiceDirectory,
        IReadOnlyList<EngineSample> samples,
        EngineSpeechRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await LoadAsync(engine, cancellationToken);
        var samplesJson = JsonSerializer.Serialize(samples, JsonOptions);
        var requestJson = JsonSerializer.Serialize(request, JsonOptions);
        var chunks = remotes.TryGetValue(engine, out var remote)
            ? await RemoteStreamAsync(remote, samplesJson, requestJson, request.Mark, cancellationToken)
            : Runtime.StreamAsync(
                py => py.Call(HostModule, "stream", engine, voiceDirectory, samplesJson, requestJson),
                (_, item) => item.AsFloatArray(),
                StreamReadAhead,
                cancellationToken);
        var state = Touch(engine);
        Interlocked.Increment(ref state.Active);
        Interlocked.Increment(ref activeStreams);
        try
        {
            await using var e = chunks.GetAsyncEnumerator(cancellationToken);
            while (true)
            {
                try
                {
                    if (!await e.MoveNextAsync())
                    {
                        break;
                    }
                }
                catch (PythonException ex)
                {
                    throw Translate(ex);
                }

                yield return e.Current;
            }
        }
        finally
        {
            Interlocked.Decrement(ref activeStreams);
            Interlocked.Decrement(ref state.Active);
            Touch(engine);
        }
    }

    private PythonRuntime Runtime => runtime ?? throw new EngineUnavailableException("The engines are still starting; retry in a moment.");

    private async Task<T> Translate<T>(Task<T> task)
    {
        try
        {
            return await task;
        }
        catch (PythonException e)
        {
            throw Translate(e);
        }
    }

    private Exception Translate(PythonException e)
    {
        if (e.PythonType == "EngineInputError")
        {
            return new EngineInputException(e.PythonMessage, e.PythonField);
        }

        if (e.PythonType == "EngineUnavailableError")
        {
            return new EngineUnavailableException(e.PythonMessage);
        }

        LogEngineFailed(logger, e.PythonType, e.PythonTraceback);
        return new EngineFailedException($"The engine failed ({e.PythonType}). The server log has the details.", e);
    }

    internal static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    [LoggerMessage(Level = LogLevel.Information, Message = "Python {Version} embedded from {Prefix}")]
    private static partial void LogPython(ILogger logger, string version, string prefix);

    [LoggerMessage(Level = LogLevel.Information, Message = "Engine {Engine} loaded ({SampleRate} Hz)")]
    private static partial void LogEngineLoaded(ILogger logger, string engine, int sampleRate);

    [LoggerMessage(Level = LogLevel.Information, Message = "Engine {Engine}: {Availability}")]
    private static partial void LogEngineDescribed(ILogger logger, string engine, string availability);

    [LoggerMessage(Level = LogLevel.Information, Message = "Engine {Engine} unloaded after {Minutes} idle minutes")]
    private static partial void LogEngineUnloaded(ILogger logger, string engine, double minutes);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The provenance mark is OFF (Timbre:Provenance:Enabled=false): speech from this server carries no mark, and nothing can tell it from a real recording. Turn it back on unless you know why it is off.")]
    private static partial void LogMarkingOff(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Engine raised {PythonType}\n{Traceback}")]
    private static partial void LogEngineFailed(ILogger logger, string pythonType, string traceback);
}
