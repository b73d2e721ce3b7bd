using System.Runtime.CompilerServices;
using System.Text.Json;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Engines;

/// <summary>The engines served by other machines (Timbre:Engine:Remote), and the mark their audio gets here.</summary>
public sealed partial class EngineHost
{
    private static Dictionary<string, RemoteEngine> RemoteEnginesOf(EngineOptions engines, ILogger logger)
    {
        if (engines.Remote.Count == 0)
        {
            return [];
        }

        // One client for every remote engine: its connection pool is per endpoint. Requests end by
        // their own tokens (first-audio timeout, the caller leaving, the request's deadline).
        var http = new HttpClient(new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        { Timeout = Timeout.InfiniteTimeSpan };
        return engines.Remote.ToDictionary(r => r.Key, r => new RemoteEngine(r.Key, r.Value, http, logger), StringComparer.Ordinal);
    }

    /// <summary>Each remote engine's description, from what its configuration says the servers run.</summary>
    private async Task DescribeRemotesAsync(CancellationToken cancellationToken)
    {
        foreach (var (name, remote) in remotes)
        {
            var json = await Translate(Runtime.InvokeAsync(py =>
            {
                using var result = py.Call(HostModule, "remote_describe", remote.Options.Kind, name, remote.Options.Model);
                return result.AsString();
            }, cancellationToken));
            descriptions[name] = JsonSerializer.Deserialize<EngineDescription>(json, JsonOptions)!;
            var endpoints = string.Join(", ", remote.Options.Endpoints);
            LogRemoteEngine(logger, name, remote.Options.Kind, endpoints);
        }
    }

    /// <summary>A remote engine's description with its endpoints as they stand now.</summary>
    private static EngineDescription WithState(EngineDescription description, RemoteEngine remote)
    {
        var usable = remote.Usable;
        return description with
        {
            Available = usable,
            Reason = usable ? null : "every endpoint failed recently and is skipped for now; see endpoints",
            Loaded = usable,
            Endpoints = remote.Endpoints,
        };
    }

    /// <summary>
    /// A remote engine's audio, marked here as the local engines' audio is marked in Python (host.py's
    /// stream): the server that made it does not carry this install's key.
    /// </summary>
    private async Task<IAsyncEnumerable<float[]>> RemoteStreamAsync(RemoteEngine remote, string samplesJson, string requestJson, EngineMark? mark, CancellationToken cancellationToken)
    {
        // Checked before any endpoint is called: a request that says nothing of the mark is refused, never left unmarked.
        ArgumentNullException.ThrowIfNull(mark, "request.Mark");
        var sent = await Translate(Runtime.InvokeAsync(py =>
        {
            using var result = py.Call(HostModule, "remote_body", remote.Options.Kind, remote.Options.Model, samplesJson, requestJson);
            return result.AsString();
        }, cancellationToken));
        var request = JsonSerializer.Deserialize<RemoteRequest>(sent, JsonOptions)!;
        return Marked(remote.StreamAsync(request.Body.GetRawText(), request.Files, cancellationToken), mark, RemoteEngine.SampleRate, cancellationToken);
    }

    private async IAsyncEnumerable<float[]> Marked(IAsyncEnumerable<float[]> chunks, EngineMark mark, int sampleRate, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (mark.Tag is not { } tag)
        {
            // The owner turned marking off for the whole server (logged as critical at start).
            await foreach (var chunk in chunks.WithCancellation(cancellationToken))
            {
                yield return chunk;
            }

            yield break;
        }

        var python = Runtime;
        await using var marker = await Translate(python.InvokeAsync(py =>
        {
            using var m = py.Call(HostModule, "mark_open", mark.Key, tag, sampleRate);
            return m.Keep(py.Runtime);
        }, cancellationToken));
        await foreach (var chunk in chunks.WithCancellation(cancellationToken))
        {
            var marked = await Translate(python.InvokeAsync(py =>
            {
                using var result = py.Call(HostModule, "mark_push", marker, chunk);
                return result.AsFloatArray();
            }, cancellationToken));
            if (marked.Length > 0)
            {
                yield return marked;
            }
        }

        var tail = await Translate(python.InvokeAsync(py =>
        {
            using var result = py.Call(HostModule, "mark_finish", marker);
            return result.AsFloatArray();
        }, cancellationToken));
        if (tail.Length > 0)
        {
            yield return tail;
        }
    }

    /// <summary>host.remote_body's answer: the body to send, and the sample files a worker may ask for, by SHA-256.</summary>
    private sealed record RemoteRequest(JsonElement Body, Dictionary<string, string> Files);

    [LoggerMessage(Level = LogLevel.Information, Message = "Remote engine {Engine} ({Kind}) on {Endpoints}")]
    private static partial void LogRemoteEngine(ILogger logger, string engine, string kind, string endpoints);
}
