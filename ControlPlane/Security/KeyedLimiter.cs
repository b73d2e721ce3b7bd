using System.Collections.Concurrent;
using System.Threading.RateLimiting;

namespace Timbre.ControlPlane.Security;

/// <summary>One limiter per key (an API key, a remote address), refilled when it is asked and forgotten when idle: no timer.</summary>
/// <remarks>
/// <see cref="PartitionedRateLimiter.Create{TResource, TPartitionKey}"/> does the same with a heartbeat that
/// ticks every 100 ms for the life of the process. Timbre's two limits (requests per key, wrong keys per
/// address) and ASP.NET's middleware, with one more, woke an idle server's timer thread 89 times a second
/// and its thread pool 185 times, which keeps a desktop's cores out of their idle states (4 and 9 without
/// them). .NET's token bucket and fixed window,
/// built with <c>AutoReplenishment = false</c>, refill from the time that has passed whenever they are
/// told to (a bucket by the fraction of periods gone, a window once it has ended), so each is told just
/// before it answers, which is all a timer would have done.
/// </remarks>
internal sealed class KeyedLimiter : PartitionedRateLimiter<string>
{
    /// <summary>Keys are swept at most this often, and forgotten when not asked for this long (or longer, if their limiter takes longer to fill).</summary>
    private static readonly TimeSpan SweepEvery = TimeSpan.FromMinutes(2);

    private readonly ConcurrentDictionary<string, Entry> entries = new(StringComparer.Ordinal);
    private readonly Func<ReplenishingRateLimiter> create;
    private readonly TimeProvider clock;
    private readonly TimeSpan idle;
    private long swept;

    /// <param name="create">A new limiter for a key, with <c>AutoReplenishment = false</c>.</param>
    /// <param name="timeToFull">How long an empty limiter takes to be full again.</param>
    /// <param name="clock">The time the sweep goes by; tests pass a fake one.</param>
    public KeyedLimiter(Func<ReplenishingRateLimiter> create, TimeSpan timeToFull, TimeProvider? clock = null)
    {
        this.create = create;
        this.clock = clock ?? TimeProvider.System;
        // Forgotten only once full again: a new limiter then answers exactly as the old one would.
        idle = timeToFull > SweepEvery ? timeToFull : SweepEvery;
        swept = this.clock.GetTimestamp();
    }

    private sealed class Entry(ReplenishingRateLimiter limiter, long now)
    {
        public ReplenishingRateLimiter Limiter { get; } = limiter;

        public long Asked { get; set; } = now;
    }

    public int Count => entries.Count;

    public override RateLimiterStatistics? GetStatistics(string resource) =>
        entries.TryGetValue(resource, out var entry) ? Current(entry).GetStatistics() : null;

    protected override RateLimitLease AttemptAcquireCore(string resource, int permitCount) => Limiter(resource).AttemptAcquire(permitCount);

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(string resource, int permitCount, CancellationToken cancellationToken) =>
        Limiter(resource).AcquireAsync(permitCount, cancellationToken);

    private ReplenishingRateLimiter Limiter(string key)
    {
        var now = clock.GetTimestamp();
        Sweep(now);
        var entry = entries.GetOrAdd(key, static (_, state) => new Entry(state.create(), state.now), (create, now));
        entry.Asked = now;
        return Current(entry);
    }

    private static ReplenishingRateLimiter Current(Entry entry)
    {
        entry.Limiter.TryReplenish();
        return entry.Limiter;
    }

    /// <summary>
    /// At most every two minutes, on a request: keys idle long enough to be full again are dropped, so memory
    /// follows the keys in use (remote addresses are anyone's to vary). A dropped limiter is not disposed: a
    /// request that took it just before may still ask it, and without a timer it holds nothing to release.
    /// </summary>
    private void Sweep(long now)
    {
        var last = Interlocked.Read(ref swept);
        if (clock.GetElapsedTime(last, now) < SweepEvery || Interlocked.CompareExchange(ref swept, now, last) != last)
        {
            return;
        }

        foreach (var (key, entry) in entries)
        {
            if (clock.GetElapsedTime(entry.Asked, now) >= idle)
            {
                entries.TryRemove(new KeyValuePair<string, Entry>(key, entry));
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var entry in entries.Values)
            {
                entry.Limiter.Dispose();
            }

            entries.Clear();
        }

        base.Dispose(disposing);
    }
}

/// <summary>A limit that is off: every permit is granted, for any key, with nothing kept per key and no timer.</summary>
internal sealed class Unlimited : PartitionedRateLimiter<string>
{
    private readonly RateLimiter granting = RateLimitPartition.GetNoLimiter(0).Factory(0);

    public override RateLimiterStatistics? GetStatistics(string resource) => granting.GetStatistics();

    protected override RateLimitLease AttemptAcquireCore(string resource, int permitCount) => granting.AttemptAcquire(permitCount);

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(string resource, int permitCount, CancellationToken cancellationToken) =>
        granting.AcquireAsync(permitCount, cancellationToken);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            granting.Dispose();
        }

        base.Dispose(disposing);
    }
}
