using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Polly;
using Polly.CircuitBreaker;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Engines;

/// <summary>How one endpoint of a remote engine stands (GET /v1/engines).</summary>
/// <param name="Url">The endpoint's base URL.</param>
/// <param name="State">closed (in use), open (skipped after failures until it is tried again) or half-open (being tried again).</param>
/// <param name="InFlight">Streams it serves now.</param>
/// <param name="LastError">Why it last failed, if it did.</param>
public sealed record RemoteEndpointState(string Url, string State, int InFlight, string? LastError);

/// <summary>
/// An engine served by other machines: with the OpenAI speech contract (vLLM-Omni), or by Timbre worker
/// nodes (POST /v1/cluster/speech). Picks the least loaded healthy endpoint, moves to another when one
/// fails before its first audio, and skips one that keeps failing (a circuit breaker per endpoint) until
/// a later request tries it again.
/// </summary>
/// <remarks>
/// Only the connection and the wait for first audio are retried: once audio has gone to the caller, a
/// failure ends the stream with an error, since another endpoint would start the text again. A caller
/// that leaves cancels the upstream request, which closes its connection so that the server stops.
/// </remarks>
public sealed partial class RemoteEngine
{
    /// <summary>The sample rate of the contract's PCM (s16le, mono).</summary>
    public const int SampleRate = 24000;

    private readonly Endpoint[] endpoints;
    private readonly HttpClient http;
    private readonly ILogger logger;
    private int turn;

    public RemoteEngine(string name, RemoteEngineOptions options, HttpClient http, ILogger logger)
    {
        Name = name;
        Options = options;
        this.http = http;
        this.logger = logger;
        endpoints = [.. options.Endpoints.Select(url => new Endpoint(this, new Uri(url.EndsWith('/') ? url : url + "/")))];
    }

    public string Name { get; }

    public RemoteEngineOptions Options { get; }

    public IReadOnlyList<RemoteEndpointState> Endpoints => [.. endpoints.Select(e => e.Describe())];

    /// <summary>True while any endpoint may be tried (its breaker is not open).</summary>
    public bool Usable => endpoints.Any(e => !e.Broken);

    /// <summary>
    /// Streams speech for <paramref name="bodyJson"/> (a POST /v1/audio/speech body, or a worker node's
    /// /v1/cluster/speech body) as float32 chunks at <see cref="SampleRate"/>, unmarked: the caller marks them.
    /// </summary>
    /// <param name="bodyJson">The request body.</param>
    /// <param name="files">The voice's sample files by SHA-256: what a worker that lacks one is sent.</param>
    /// <param name="cancellationToken">The caller leaving, or its deadline.</param>
    /// <exception cref="EngineInputException">The server refused the request as invalid (400/422): not retried.</exception>
    /// <exception cref="EngineUnavailableException">No endpoint produced first audio.</exception>
    /// <exception cref="EngineFailedException">The endpoint failed after audio had been sent.</exception>
    public async IAsyncEnumerable<float[]> StreamAsync(string bodyJson, IReadOnlyDictionary<string, string> files, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var stream = await OpenAsync(new Outgoing(bodyJson, files), cancellationToken);
        try
        {
            while (await stream.ReadAsync(cancellationToken) is { } chunk)
            {
                yield return chunk;
            }
        }
        finally
        {
            await stream.DisposeAsync();
            stream.Endpoint.Leave();
        }
    }

    /// <summary>The first endpoint, in order of load, that answers with audio; its first chunk is read.</summary>
    private async Task<UpstreamStream> OpenAsync(Outgoing outgoing, CancellationToken cancellationToken)
    {
        var tried = new HashSet<Endpoint>();
        var failures = new List<string>();
        while (Enter(tried) is { } endpoint)
        {
            tried.Add(endpoint);
            try
            {
                return await endpoint.Breaker.ExecuteAsync(
                    static async (state, ct) => await state.endpoint.Owner.StartAsync(state.endpoint, state.outgoing, ct),
                    (endpoint, outgoing),
                    cancellationToken);
            }
            catch (BrokenCircuitException)
            {
                // Opened (or being probed by another request) since it was picked.
                endpoint.Leave();
            }
            catch (EndpointFailedException e)
            {
                endpoint.Leave();
                endpoint.LastError = e.Message;
                failures.Add($"{endpoint.Url}: {e.Message}");
                LogEndpointFailed(logger, Name, endpoint.Text, e.Message);
            }
            catch
            {
                endpoint.Leave();
                throw;
            }
        }

        var why = failures.Count > 0 ? string.Join("; ", failures) : "every endpoint failed recently and is skipped for now";
        throw new EngineUnavailableException(
            $"The remote engine '{Name}' could not start this request: {why}. Check that its servers run (GET /v1/engines shows each endpoint), or choose another engine.");
    }

    /// <summary>
    /// The least loaded endpoint not yet tried whose breaker lets requests through, counted in at once so
    /// that requests arriving together spread; ties go round the list.
    /// </summary>
    private Endpoint? Enter(HashSet<Endpoint> tried)
    {
        lock (endpoints)
        {
            var best = Pick(tried);
            best?.Enter();
            return best;
        }
    }

    private Endpoint? Pick(HashSet<Endpoint> tried)
    {
        var start = ++turn;
        Endpoint? best = null;
        for (var i = 0; i < endpoints.Length; i++)
        {
            var e = endpoints[(int)((uint)(start + i) % (uint)endpoints.Length)];
            if (tried.Contains(e) || e.Broken)
            {
                continue;
            }

            if (best is null || e.InFlight < best.InFlight)
            {
                best = e;
            }
        }

        return best;
    }

    /// <summary>Sends the request to one endpoint and waits for its first audio, within FirstAudioTimeoutSeconds.</summary>
    private async Task<UpstreamStream> StartAsync(Endpoint endpoint, Outgoing outgoing, CancellationToken cancellationToken)
    {
        using var firstAudio = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        firstAudio.CancelAfter(TimeSpan.FromSeconds(Options.FirstAudioTimeoutSeconds));
        HttpResponseMessage? response = null;
        UpstreamStream? stream = null;
        try
        {
            response = await SendAsync(endpoint, outgoing, firstAudio.Token);
            if (response.StatusCode == HttpStatusCode.Conflict && Options.Kind == RemoteEngineOptions.Timbre)
            {
                // A worker keeps each sample once, by content: it names those it lacks, they are sent, and
                // the request is made again. A worker that still lacks them is failing.
                var missing = await MissingAsync(response, firstAudio.Token);
                response.Dispose();
                response = null;
                await UploadAsync(endpoint, missing, outgoing.Files, firstAudio, cancellationToken);
                response = await SendAsync(endpoint, outgoing, firstAudio.Token);
            }

            if (!response.IsSuccessStatusCode)
            {
                throw await RefusalAsync(endpoint, response, firstAudio.Token);
            }

            stream = UpstreamStream.Of(this, endpoint, response, await response.Content.ReadAsStreamAsync(firstAudio.Token));
            response = null;
            await stream.ReadFirstAsync(firstAudio.Token);
            var opened = stream;
            stream = null;
            return opened;
        }
        catch (OperationCanceledException) when (firstAudio.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new EndpointFailedException($"no audio within {Options.FirstAudioTimeoutSeconds:0.#} s (FirstAudioTimeoutSeconds)");
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            throw new EndpointFailedException(e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message);
        }
        finally
        {
            response?.Dispose();
            if (stream is not null)
            {
                await stream.DisposeAsync();
            }
        }
    }

    private async Task<HttpResponseMessage> SendAsync(Endpoint endpoint, Outgoing outgoing, CancellationToken cancellationToken)
    {
        var path = Options.Kind == RemoteEngineOptions.Timbre ? "v1/cluster/speech" : "v1/audio/speech";
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint.Url, path))
        {
            Content = new StringContent(outgoing.Body, Encoding.UTF8, "application/json"),
        };
        Authorise(request);
        return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }

    private void Authorise(HttpRequestMessage request)
    {
        if (!string.IsNullOrEmpty(Options.ApiKey))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Options.ApiKey);
        }
    }

    /// <summary>The exception for a refused request: the caller's fault (400, 422) or the endpoint's (the rest).</summary>
    private async Task<Exception> RefusalAsync(Endpoint endpoint, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        string text;
        try
        {
            text = await response.Content.ReadAsStringAsync(cancellationToken);
        }
        catch (HttpRequestException)
        {
            text = "";
        }

        var (message, param) = ErrorOf(text);
        if (response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity)
        {
            return new EngineInputException($"The remote engine '{Name}' refused the request: {message ?? $"HTTP {status}"}", FieldOf(param));
        }

        var hint = response.StatusCode switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden when Options.Kind == RemoteEngineOptions.Timbre => $" (Timbre:Engine:Remote:{Name}:ApiKey must be the worker's Timbre:Cluster:NodeKey)",
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => $" (check Timbre:Engine:Remote:{Name}:ApiKey)",
            HttpStatusCode.NotFound when Options.Kind == RemoteEngineOptions.Timbre => $" (check that {endpoint.Url} is a Timbre node with Timbre:Cluster:NodeKey set)",
            HttpStatusCode.NotFound => $" (check Timbre:Engine:Remote:{Name}:Model and that {endpoint.Url} serves /v1/audio/speech)",
            _ => "",
        };
        return new EndpointFailedException($"HTTP {status}{(message is null ? "" : $": {message}")}{hint}");
    }

    /// <summary>vLLM's {"error": {"message", "param"}}, FastAPI's {"detail"}, or nothing readable.</summary>
    private static (string? Message, string? Param) ErrorOf(string text)
    {
        try
        {
            using var json = JsonDocument.Parse(text);
            var root = json.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out var error))
            {
                if (error.ValueKind == JsonValueKind.String)
                {
                    return (error.GetString(), null);
                }

                var message = error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
                var param = error.TryGetProperty("param", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
                return (message, param);
            }

            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("detail", out var detail))
            {
                // FastAPI's {"detail"}, or a Timbre worker's problem details with its "field".
                var field = root.TryGetProperty("field", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
                return (detail.ValueKind == JsonValueKind.String ? detail.GetString() : detail.GetRawText(), field);
            }
        }
        catch (JsonException)
        {
        }

        return (string.IsNullOrWhiteSpace(text) ? null : text.Length > 300 ? text[..300] : text, null);
    }

    /// <summary>The contract's field in Timbre's words.</summary>
    private static string? FieldOf(string? param) => param switch
    {
        "input" or "text" => "text",
        "voice" or "ref_audio" or "ref_text" => "voice",
        "language" or "speed" or "instructions" => param,
        _ => null,
    };

    /// <summary>What one request sends: its body, and the sample files a worker may ask for.</summary>
    private sealed record Outgoing(string Body, IReadOnlyDictionary<string, string> Files);

    /// <summary>The server broke or could not be reached; another endpoint may serve the request.</summary>
    private sealed class EndpointFailedException(string message) : Exception(message);

    private sealed class Endpoint
    {
        private int inFlight;
        private long retryAt;

        public Endpoint(RemoteEngine owner, Uri url)
        {
            Owner = owner;
            Url = url;
            var text = url.ToString();
            Breaker = new ResiliencePipelineBuilder<UpstreamStream>()
                .AddCircuitBreaker(new CircuitBreakerStrategyOptions<UpstreamStream>
                {
                    // Opens when every request in the last 30 s failed, two at least: a dead server refuses
                    // connections at once, and a request moved to another endpoint costs little, so there is
                    // no need to wait for more; one failure among successes leaves it in use.
                    FailureRatio = 1.0,
                    MinimumThroughput = 2,
                    SamplingDuration = TimeSpan.FromSeconds(30),
                    BreakDuration = TimeSpan.FromSeconds(owner.Options.BreakSeconds),
                    ShouldHandle = new PredicateBuilder<UpstreamStream>().Handle<EndpointFailedException>(),
                    OnOpened = args =>
                    {
                        Volatile.Write(ref retryAt, TimeProvider.System.GetTimestamp() + (long)(args.BreakDuration.TotalSeconds * TimeProvider.System.TimestampFrequency));
                        LogOpened(owner.logger, owner.Name, text, owner.Options.BreakSeconds);
                        return ValueTask.CompletedTask;
                    },
                    OnClosed = _ =>
                    {
                        LogClosed(owner.logger, owner.Name, text);
                        LastError = null;
                        return ValueTask.CompletedTask;
                    },
                    StateProvider = State,
                })
                .Build();
        }

        public RemoteEngine Owner { get; }

        public Uri Url { get; }

        public string Text => Url.ToString();

        public CircuitBreakerStateProvider State { get; } = new();

        public ResiliencePipeline<UpstreamStream> Breaker { get; }

        public int InFlight => Volatile.Read(ref inFlight);

        /// <summary>
        /// Skipped: its breaker opened after failures and the break is not over. (The breaker reports Open
        /// until a request tries it after the break, so the break's end is kept here.)
        /// </summary>
        public bool Broken => State.CircuitState switch
        {
            CircuitState.Isolated => true,
            CircuitState.Open => TimeProvider.System.GetTimestamp() < Volatile.Read(ref retryAt),
            _ => false,
        };

        public string? LastError { get; set; }

        public void Enter() => Interlocked.Increment(ref inFlight);

        public void Leave() => Interlocked.Decrement(ref inFlight);

        /// <summary>open while skipped; half-open once the next request may try it again (or one is).</summary>
        public RemoteEndpointState Describe() => new(Url.ToString().TrimEnd('/'), State.CircuitState switch
        {
            _ when Broken => "open",
            CircuitState.Open or CircuitState.HalfOpen => "half-open",
            _ => "closed",
        }, InFlight, LastError);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Remote engine {Engine}: endpoint {Endpoint} failed before first audio: {Reason}")]
    private static partial void LogEndpointFailed(ILogger logger, string engine, string endpoint, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Remote engine {Engine}: endpoint {Endpoint} keeps failing; skipped for {Seconds} s, then tried again")]
    private static partial void LogOpened(ILogger logger, string engine, string endpoint, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Remote engine {Engine}: endpoint {Endpoint} serves again")]
    private static partial void LogClosed(ILogger logger, string engine, string endpoint);
}
