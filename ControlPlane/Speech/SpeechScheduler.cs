using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Observability;

namespace Timbre.ControlPlane.Speech;

/// <summary>Admission to the engines: a bounded, fair queue per engine in front of a fixed number of slots.</summary>
/// <remarks>
/// Each engine has its own slots (how many streams it runs at once) and its own queue. Waiting
/// requests are grouped by client (API key) and served round-robin, so one client sending fifty
/// requests cannot starve another sending one. A full queue refuses at once: a client is better
/// served by a 429 with Retry-After than by a request that waits minutes and then times out.
/// </remarks>
public sealed class SpeechScheduler
{
    private readonly Dictionary<string, Lane> lanes;
    private volatile bool draining;

    public SpeechScheduler(IOptions<TimbreOptions> options, TimbreMetrics metrics)
    {
        var speech = options.Value.Speech;
        var engines = options.Value.Engine;
        // A remote engine runs as many streams as its endpoints together; each endpoint's share is RemoteEngine's.
        lanes = engines.Names.ToDictionary(
            e => e,
            e => new Lane(engines.Remote.TryGetValue(e, out var remote) ? remote.Concurrency * remote.Endpoints.Count : speech.ConcurrencyOf(e), speech.QueueLength),
            StringComparer.OrdinalIgnoreCase);
        metrics.AddGauges(() => lanes.SelectMany(l => new[]
        {
            new TimbreMetrics.Gauge("timbre_queue_depth", "Requests waiting for an engine slot.", $"engine=\"{l.Key}\"", l.Value.Waiting),
            new TimbreMetrics.Gauge("timbre_streams_in_flight", "Speech streams holding an engine slot.", $"engine=\"{l.Key}\"", l.Value.Running),
        }));
    }

    /// <summary>True once SIGTERM arrived: nothing new is admitted.</summary>
    public bool Draining => draining;

    /// <summary>Requests holding a slot on any engine.</summary>
    public int Running => lanes.Values.Sum(l => l.Running);

    public int Waiting(string engine) => lanes[engine].Waiting;

    public int RunningOn(string engine) => lanes[engine].Running;

    /// <summary>Stops admitting requests; those waiting are refused too.</summary>
    public void BeginDrain()
    {
        draining = true;
        foreach (var lane in lanes.Values)
        {
            lane.RefuseWaiting(new SpeechRejectedException(RejectionReason.Draining, "Timbre is shutting down; retry on another instance or after the restart.", null));
        }
    }

    /// <summary>Waits for a slot on <paramref name="engine"/>; the returned lease frees it.</summary>
    /// <param name="engine">The engine's lane.</param>
    /// <param name="client">Who asks: waiting requests are served round-robin across clients.</param>
    /// <param name="cost">The request's size in characters of text, for the Retry-After estimate.</param>
    /// <param name="cancellationToken">Leaves the queue.</param>
    /// <exception cref="SpeechRejectedException">The queue is full or Timbre is draining.</exception>
    public ValueTask<SpeechLease> EnterAsync(string engine, string client, int cost, CancellationToken cancellationToken)
    {
        if (draining)
        {
            throw new SpeechRejectedException(RejectionReason.Draining, "Timbre is shutting down; retry on another instance or after the restart.", null);
        }

        return lanes[engine].EnterAsync(engine, client, Math.Max(1, cost), cancellationToken);
    }

    /// <summary>
    /// Until the first request on a lane completes, a request is assumed to hold its slot this long per
    /// character: what the classic engine takes with sixteen streams sharing two cores, which is the
    /// state a lane is in when its queue fills. Measured hold times replace it from the first completion.
    /// </summary>
    internal const double PriorSecondsPerCharacter = 0.025;

    internal sealed class Lane(int slots, int queueLength)
    {
        private readonly Lock gate = new();
        private readonly Dictionary<string, Queue<Waiter>> byClient = new(StringComparer.Ordinal);
        // Clients with someone waiting, in the order they are next served.
        private readonly LinkedList<string> turn = new();
        private readonly HashSet<SpeechLease> holders = [];
        private int running;
        private int waiting;
        // Exponentially weighted means of how long completed requests held a slot and how long their
        // texts were: their ratio is the lane's measured service time per character, under the load it has had.
        private double meanHoldSeconds;
        private double meanCharacters;

        public int Running => Volatile.Read(ref running);

        public int Waiting => Volatile.Read(ref waiting);

        public ValueTask<SpeechLease> EnterAsync(string engine, string client, int cost, CancellationToken ct)
        {
            ct.ThrowIfCancellationRequested();
            Waiter waiter;
            lock (gate)
            {
                if (running < slots && waiting == 0)
                {
                    return ValueTask.FromResult(Hold(engine, cost));
                }

                if (waiting >= queueLength)
                {
                    var retry = RetryAfter();
                    throw new SpeechRejectedException(
                        RejectionReason.QueueFull,
                        $"The {engine} engine is busy: {running} requests are running and {waiting} waiting, the most it queues. Retry in {retry.TotalSeconds:0} s.",
                        retry);
                }

                waiter = new Waiter(client, engine, cost);
                if (!byClient.TryGetValue(client, out var queue))
                {
                    byClient[client] = queue = new Queue<Waiter>();
                    turn.AddLast(client);
                }

                queue.Enqueue(waiter);
                waiting++;
            }

            return WaitAsync(waiter, ct);
        }

        // The count of running requests and the set of their leases change together, here and in Drop.
        private SpeechLease Hold(string engine, int cost)
        {
            var lease = new SpeechLease(this, engine, cost);
            holders.Add(lease);
            running++;
            return lease;
        }

        private void Drop(SpeechLease lease)
        {
            holders.Remove(lease);
            running--;
        }

        /// <summary>
        /// When a request arriving now would start at once: every running request's expected remaining time
        /// and every waiting request's expected time, packed onto the slots in turn; the earliest slot then free.
        /// Whole seconds, as Retry-After carries them.
        /// </summary>
        private TimeSpan RetryAfter()
        {
            var perCharacter = meanCharacters > 0 ? meanHoldSeconds / meanCharacters : PriorSecondsPerCharacter;
            var free = new PriorityQueue<double, double>();
            foreach (var holder in holders)
            {
                var expected = holder.Cost * perCharacter;
                // One running longer than expected is not about to finish: assume a tenth of its estimate is left.
                var left = Math.Max(expected - holder.Elapsed.TotalSeconds, expected / 10);
                free.Enqueue(left, left);
            }

            for (var idle = holders.Count; idle < slots; idle++)
            {
                free.Enqueue(0, 0);
            }

            foreach (var waiter in byClient.Values.SelectMany(q => q))
            {
                var at = free.Dequeue() + (waiter.Cost * perCharacter);
                free.Enqueue(at, at);
            }

            return TimeSpan.FromSeconds(Math.Clamp(Math.Ceiling(free.Peek()), 1, 3600));
        }

        private async ValueTask<SpeechLease> WaitAsync(Waiter waiter, CancellationToken ct)
        {
            await using (ct.Register(() => Abandon(waiter)))
            {
                return await waiter.Admitted.Task.ConfigureAwait(false);
            }
        }

        private void Abandon(Waiter waiter)
        {
            lock (gate)
            {
                if (waiter.Admitted.Task.IsCompleted)
                {
                    return;
                }

                Remove(waiter);
                waiter.Admitted.TrySetCanceled();
            }
        }

        private void Remove(Waiter waiter)
        {
            var queue = byClient[waiter.Client];
            var kept = queue.Where(w => w != waiter).ToArray();
            queue.Clear();
            foreach (var w in kept)
            {
                queue.Enqueue(w);
            }

            waiting--;
            if (queue.Count == 0)
            {
                byClient.Remove(waiter.Client);
                turn.Remove(waiter.Client);
            }
        }

        public void RefuseWaiting(Exception reason)
        {
            lock (gate)
            {
                foreach (var w in byClient.Values.SelectMany(q => q))
                {
                    w.Admitted.TrySetException(reason);
                }

                byClient.Clear();
                turn.Clear();
                waiting = 0;
            }
        }

        public void Release(SpeechLease lease)
        {
            lock (gate)
            {
                Drop(lease);
                var first = meanCharacters == 0;
                meanHoldSeconds = first ? lease.Elapsed.TotalSeconds : (0.8 * meanHoldSeconds) + (0.2 * lease.Elapsed.TotalSeconds);
                meanCharacters = first ? lease.Cost : (0.8 * meanCharacters) + (0.2 * lease.Cost);
                // The freed slot goes to the client whose turn it is, then that client goes to the back.
                while (turn.First is { } next)
                {
                    var client = next.Value;
                    var queue = byClient[client];
                    var waiter = queue.Dequeue();
                    waiting--;
                    turn.RemoveFirst();
                    if (queue.Count > 0)
                    {
                        turn.AddLast(client);
                    }
                    else
                    {
                        byClient.Remove(client);
                    }

                    var admitted = Hold(waiter.Engine, waiter.Cost);
                    if (waiter.Admitted.TrySetResult(admitted))
                    {
                        return;
                    }

                    Drop(admitted);
                }
            }
        }
    }

    private sealed class Waiter(string client, string engine, int cost)
    {
        public string Client { get; } = client;

        public string Engine { get; } = engine;

        public int Cost { get; } = cost;

        public TaskCompletionSource<SpeechLease> Admitted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>A held engine slot; disposing it gives the slot to the next waiting client.</summary>
    public sealed class SpeechLease : IDisposable
    {
        private readonly Lane lane;
        private readonly long started = TimeProvider.System.GetTimestamp();
        private int released;

        internal SpeechLease(Lane lane, string engine, int cost)
        {
            this.lane = lane;
            Engine = engine;
            Cost = cost;
        }

        public string Engine { get; }

        internal int Cost { get; }

        internal TimeSpan Elapsed => TimeProvider.System.GetElapsedTime(started);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
            {
                lane.Release(this);
            }
        }
    }
}

/// <summary>Why a request was refused before it reached an engine.</summary>
public enum RejectionReason
{
    QueueFull,
    Draining,
    RateLimited,
    Timeout,
    SlowClient,
}

/// <summary>A request refused by the scheduler: 429 with Retry-After when full, 503 when draining.</summary>
public sealed class SpeechRejectedException(RejectionReason reason, string message, TimeSpan? retryAfter) : Exception(message)
{
    public RejectionReason Reason { get; } = reason;

    public TimeSpan? RetryAfter { get; } = retryAfter;
}
