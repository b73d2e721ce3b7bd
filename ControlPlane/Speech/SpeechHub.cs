using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Timbre.ControlPlane.Cluster;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Security;

namespace Timbre.ControlPlane.Speech;

/// <summary>/hubs/speech: speech as a stream of 16-bit PCM chunks, over JSON or MessagePack.</summary>
public sealed partial class SpeechHub(Synthesizer synthesizer, SpeechRequests requests, RequestLimiter limiter, ILogger<SpeechHub> logger) : Hub
{
    /// <summary>About 160 ms of audio per chunk: small enough to start playback at once, large enough to keep per-message overhead low.</summary>
    public const double ChunkSeconds = 0.16;

    /// <summary>
    /// Streams speech for <paramref name="request"/>. The first chunk leaves as soon as the engine yields its
    /// first fragment; cancelling the stream (or losing the connection) closes the engine's generator.
    /// The last chunk has <c>IsFinal</c> set and no audio.
    /// </summary>
    public async IAsyncEnumerable<AudioChunk> StreamSpeech(SpeechRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var client = ApiKeys.ClientOf(Context.User);
        if (await limiter.TryAcquireAsync(client) is { } retryAfter)
        {
            throw Refuse($"Too many requests for this API key: retry in {retryAfter.TotalSeconds:0} s.");
        }

        var (job, problem) = synthesizer.Check(
            new SpeechInput(request.Text, request.Voice, request.Language, request.Engine, request.Instructions, request.Speed), SpeechFields.Native);
        if (problem is not null)
        {
            throw Refuse(problem.Detail);
        }

        using var registration = await RegisterAsync(client, request.RequestId, cancellationToken);
        var stream = await StartAsync(job!, client, registration.Token);
        await using (stream)
        {
            // Bytes of 16-bit mono PCM in one message.
            var perChunk = 2 * (int)(stream.SampleRate * ChunkSeconds);
            long sequence = 0;
            await using var audio = stream.ReadPcmAsync(registration.Token).GetAsyncEnumerator(registration.Token);
            while (await NextAsync(audio))
            {
                var pcm = audio.Current;
                for (var offset = 0; offset < pcm.Length; offset += perChunk)
                {
                    yield return new AudioChunk
                    {
                        Sequence = sequence++,
                        SampleRate = stream.SampleRate,
                        Channels = 1,
                        Pcm = pcm.Length <= perChunk ? pcm : pcm.AsSpan(offset, Math.Min(perChunk, pcm.Length - offset)).ToArray(),
                    };
                }
            }

            yield return new AudioChunk { Sequence = sequence, SampleRate = stream.SampleRate, Channels = 1, Pcm = [], IsFinal = true };
        }
    }

    /// <summary>Cancels this API key's stream with <paramref name="requestId"/>, from any connection. True when one was running.</summary>
    public Task<bool> CancelSpeech(string requestId) => requests.CancelAsync(ApiKeys.ClientOf(Context.User), requestId);

    private async Task<SpeechRequests.Registration> RegisterAsync(string client, string? requestId, CancellationToken ct)
    {
        try
        {
            return await requests.RegisterAsync(client, requestId, ct);
        }
        catch (HubException e)
        {
            throw Refuse(e.Message);
        }
    }

    private async Task<Synthesizer.SpeechStream> StartAsync(SpeechJob job, string client, CancellationToken ct)
    {
        try
        {
            // A hub client that stops reading blocks the whole connection: cutting it off is the only remedy.
            return await synthesizer.StartAsync(job, client, Context.Abort, ct);
        }
        catch (Exception e) when (e is SpeechRejectedException or EngineInputException or EngineUnavailableException or EngineFailedException)
        {
            // Only a HubException's message reaches the client; these messages say what to do.
            throw Refuse(e.Message, e);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogFault(logger, e);
            throw;
        }
    }

    private async Task<bool> NextAsync(IAsyncEnumerator<byte[]> audio)
    {
        try
        {
            return await audio.MoveNextAsync();
        }
        catch (Exception e) when (e is SpeechRejectedException or EngineFailedException)
        {
            throw Refuse(e.Message, e);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogFault(logger, e);
            throw;
        }
    }

    /// <summary>The exception that ends a stream with <paramref name="message"/> for the client, logged once without a stack trace.</summary>
    private HubException Refuse(string message, Exception? cause = null)
    {
        // Engine faults were logged with their traceback where they happened; the rest are the client's to fix.
        LogRefused(logger, message);
        return new HubException(message, cause);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Hub stream refused or stopped: {Reason}")]
    private static partial void LogRefused(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Hub stream failed")]
    private static partial void LogFault(ILogger logger, Exception exception);
}

/// <summary>
/// The hub streams running now, by API key and request id, so that each id streams once and can be
/// cancelled. With a cluster (Timbre:Cluster:Redis) both hold across nodes: a stream's id is claimed in
/// Redis for as long as a request may run, and a cancel for a stream on another node goes to every node
/// on Timbre's own Redis channel, since the SignalR backplane relays hub messages, not hub streams.
/// </summary>
public sealed partial class SpeechRequests(ClusterLink cluster, IOptions<TimbreOptions> options, ILogger<SpeechRequests> logger) : IHostedService
{
    private static readonly RedisChannel Cancels = RedisChannel.Literal("timbre:cancel");
    // A field, not the captured parameter, so that a Registration can reach it.
    private readonly ClusterLink cluster = cluster;
    private readonly ConcurrentDictionary<(string Client, string Id), CancellationTokenSource> running = new();
    private int subscribed;

    /// <summary>Registers a stream; a RequestId already streaming here, or on another node, is refused.</summary>
    public async Task<Registration> RegisterAsync(string client, string? requestId, CancellationToken streamToken)
    {
        var key = (client, requestId ?? Guid.NewGuid().ToString("n"));
        if (key.Item2.Length > 128)
        {
            throw new HubException("RequestId is longer than 128 characters.");
        }

        var cts = CancellationTokenSource.CreateLinkedTokenSource(streamToken);
        if (!running.TryAdd(key, cts))
        {
            cts.Dispose();
            throw new HubException($"Request '{key.Item2}' is already streaming; use a new RequestId or cancel that one first.");
        }

        var claimed = false;
        if (requestId is not null && await cluster.ConnectionAsync() is { } redis)
        {
            try
            {
                // Held at most as long as a request may run, so a node that dies leaves nothing stuck.
                var lifetime = TimeSpan.FromSeconds(options.Value.Speech.RequestTimeoutSeconds + 60);
                claimed = await redis.GetDatabase().StringSetAsync(RedisKey(key), cluster.NodeId, lifetime, When.NotExists);
                if (!claimed)
                {
                    running.TryRemove(new KeyValuePair<(string, string), CancellationTokenSource>(key, cts));
                    cts.Dispose();
                    throw new HubException($"Request '{key.Item2}' is already streaming on another Timbre node; use a new RequestId or cancel that one first.");
                }
            }
            catch (RedisException e)
            {
                cluster.Lost(e.Message);
            }
        }

        return new Registration(this, key, cts, claimed);
    }

    /// <summary>Cancels this API key's stream with <paramref name="requestId"/>, on this node or another. True when one was running.</summary>
    public async Task<bool> CancelAsync(string client, string requestId)
    {
        if (CancelHere(client, requestId))
        {
            return true;
        }

        if (await cluster.ConnectionAsync() is not { } redis)
        {
            return false;
        }

        try
        {
            if (!await redis.GetDatabase().KeyExistsAsync(RedisKey((client, requestId))))
            {
                return false;
            }

            return await redis.GetSubscriber().PublishAsync(Cancels, $"{client}\n{requestId}") > 0;
        }
        catch (RedisException e)
        {
            cluster.Lost(e.Message);
            return false;
        }
    }

    private bool CancelHere(string client, string requestId)
    {
        if (!running.TryGetValue((client, requestId), out var cts))
        {
            return false;
        }

        try
        {
            cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            return false;
        }

        return true;
    }

    private static RedisKey RedisKey((string Client, string Id) key) => $"timbre:stream:{key.Client}:{key.Id}";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (await cluster.ConnectionAsync() is { } redis)
        {
            // Redis may be down now: the channel is joined when it comes back.
            redis.ConnectionRestored += (_, _) => _ = SubscribeAsync(redis);
            await SubscribeAsync(redis);
        }
    }

    private async Task SubscribeAsync(ConnectionMultiplexer redis)
    {
        if (Interlocked.CompareExchange(ref subscribed, 1, 0) != 0)
        {
            return;
        }

        try
        {
            await redis.GetSubscriber().SubscribeAsync(Cancels, (_, message) =>
            {
                var parts = message.ToString().Split('\n', 2);
                if (parts.Length == 2 && CancelHere(parts[0], parts[1]))
                {
                    LogCancelledFromElsewhere(logger, parts[1]);
                }
            });
        }
        catch (RedisException e)
        {
            Volatile.Write(ref subscribed, 0);
            cluster.Lost(e.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Hub stream {RequestId} cancelled from another node")]
    private static partial void LogCancelledFromElsewhere(ILogger logger, string requestId);

    /// <summary>A running stream's place in the registry; disposing it frees the id, here and in Redis.</summary>
    public sealed class Registration(SpeechRequests owner, (string, string) key, CancellationTokenSource cts, bool claimed) : IDisposable
    {
        private const string ReleaseOwn = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

        public CancellationToken Token => cts.Token;

        public void Dispose()
        {
            owner.running.TryRemove(new KeyValuePair<(string, string), CancellationTokenSource>(key, cts));
            cts.Dispose();
            if (claimed && owner.cluster.ConnectionAsync() is { IsCompletedSuccessfully: true, Result: { } redis })
            {
                try
                {
                    redis.GetDatabase().ScriptEvaluate(ReleaseOwn, [RedisKey(key)], [owner.cluster.NodeId], CommandFlags.FireAndForget);
                }
                catch (RedisException e)
                {
                    // It expires by itself.
                    owner.cluster.Lost(e.Message);
                }
            }
        }
    }
}

/// <summary>The per-key request limit, shared by HTTP (through the rate-limiting middleware) and the hub.</summary>
public sealed class RequestLimiter(PartitionedRateLimiter<string> limiter)
{
    public PartitionedRateLimiter<string> Limiter { get; } = limiter;

    /// <summary>Null when the request may go ahead, else how long to wait. Never waits itself: the limiters queue nothing.</summary>
    public async ValueTask<TimeSpan?> TryAcquireAsync(string client)
    {
        using var lease = await Limiter.AcquireAsync(client);
        if (lease.IsAcquired)
        {
            return null;
        }

        return lease.TryGetMetadata(MetadataName.RetryAfter, out var retry) ? retry : TimeSpan.FromSeconds(1);
    }
}
