using System.Net;
using Microsoft.AspNetCore.SignalR.Client;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;

namespace Timbre.McpClient;

/// <summary>The SignalR connection to /hubs/speech, (re)opened on demand with retries and a circuit breaker.</summary>
/// <remarks>
/// A server restart between two tool calls is invisible: a connection found closed is replaced and
/// the call goes on. An unreachable server fails fast once the breaker opens, with a message that
/// names the URL, instead of every call waiting through its own retries.
/// </remarks>
public sealed partial class TimbreConnection(ClientSettings settings, ILogger<TimbreConnection> logger) : IAsyncDisposable
{
    private readonly SemaphoreSlim gate = new(1, 1);
    private HubConnection? hub;

    private readonly ResiliencePipeline connect = new ResiliencePipelineBuilder()
        .AddCircuitBreaker(new CircuitBreakerStrategyOptions
        {
            FailureRatio = 1.0,
            MinimumThroughput = 3,
            SamplingDuration = TimeSpan.FromSeconds(30),
            BreakDuration = TimeSpan.FromSeconds(5),
            ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>(e => e.StatusCode is null).Handle<TimeoutException>(),
        })
        .AddRetry(new RetryStrategyOptions
        {
            MaxRetryAttempts = 2,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(250),
            // A refused key or a missing route will not change by retrying; a refused connection might.
            ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>(e => e.StatusCode is null).Handle<TimeoutException>(),
        })
        .AddTimeout(TimeSpan.FromSeconds(10))
        .Build();

    public Uri Url => settings.Url!;

    /// <summary>An open connection; throws <see cref="ToolException"/> with what to fix when there is none.</summary>
    public async Task<HubConnection> OpenAsync(CancellationToken ct)
    {
        if (settings.Problem is { } problem)
        {
            throw new ToolException(problem);
        }

        await gate.WaitAsync(ct);
        try
        {
            if (hub is { State: HubConnectionState.Connected })
            {
                return hub;
            }

            if (hub is not null)
            {
                // Closed (the server went away) or stuck reconnecting: start afresh.
                await hub.DisposeAsync();
                hub = null;
            }

            var fresh = Build();
            try
            {
                await connect.ExecuteAsync(async token => await fresh.StartAsync(token), ct);
            }
            catch (BrokenCircuitException)
            {
                await fresh.DisposeAsync();
                throw new ToolException($"Timbre at {Url} is not answering (several attempts just failed); start it (ops/run on the desktop) or check TIMBRE_URL. The next call tries again.");
            }
            catch (HttpRequestException e) when (e.StatusCode == HttpStatusCode.Unauthorized)
            {
                await fresh.DisposeAsync();
                throw new ToolException(settings.ApiKey is null
                    ? $"Timbre at {Url} needs an API key: set TIMBRE_API_KEY to one of the server's Timbre:Auth:ApiKeys."
                    : $"Timbre at {Url} refused the API key in TIMBRE_API_KEY: use one of the server's Timbre:Auth:ApiKeys.");
            }
            catch (Exception e) when (e is HttpRequestException or TimeoutException or Polly.Timeout.TimeoutRejectedException)
            {
                await fresh.DisposeAsync();
                LogConnectFailed(logger, Url, e.Message);
                throw new ToolException($"Cannot reach Timbre at {Url}: {e.Message}. Start it (ops/run on the desktop) or fix TIMBRE_URL.");
            }

            hub = fresh;
            return hub;
        }
        finally
        {
            gate.Release();
        }
    }

    private HubConnection Build() => new HubConnectionBuilder()
        .WithUrl(new Uri(Url, "hubs/speech"), o =>
        {
            if (settings.ApiKey is { } key)
            {
                o.AccessTokenProvider = () => Task.FromResult<string?>(key);
            }
        })
        .AddMessagePackProtocol()
        .WithAutomaticReconnect()
        .Build();

    /// <summary>The server's voices as GET /v1/voices lists them.</summary>
    public async Task<IReadOnlyList<VoiceSummary>> VoicesAsync(CancellationToken ct)
    {
        if (settings.Problem is { } problem)
        {
            throw new ToolException(problem);
        }

        using var http = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromSeconds(10) };
        if (settings.ApiKey is { } key)
        {
            http.DefaultRequestHeaders.Authorization = new("Bearer", key);
        }

        try
        {
            using var response = await http.GetAsync(new Uri("v1/voices", UriKind.Relative), ct);
            if (response.StatusCode == HttpStatusCode.Unauthorized)
            {
                throw new ToolException($"Timbre at {Url} refused the API key: set TIMBRE_API_KEY to one of the server's Timbre:Auth:ApiKeys.");
            }

            response.EnsureSuccessStatusCode();
            return await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<List<VoiceSummary>>(response.Content, ct) ?? [];
        }
        catch (HttpRequestException e)
        {
            throw new ToolException($"Cannot reach Timbre at {Url}: {e.Message}. Start it (ops/run on the desktop) or fix TIMBRE_URL.");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (hub is not null)
        {
            await hub.DisposeAsync();
        }

        gate.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not connect to {Url}: {Reason}")]
    private static partial void LogConnectFailed(ILogger logger, Uri url, string reason);
}

/// <summary>A voice as GET /v1/voices describes it.</summary>
public sealed record VoiceSummary(string Id, string Name, string? Language);

/// <summary>A failure the agent should read: the message says what happened and what to fix.</summary>
public sealed class ToolException(string message) : Exception(message);
