using System.Threading.RateLimiting;
using Microsoft.Extensions.Time.Testing;
using Timbre.ControlPlane.Security;

namespace Timbre.ControlPlane.Tests;

/// <summary>The per-key limits refill from the time that has passed when they are asked, with no timer, and forget idle keys.</summary>
public sealed class KeyedLimiterTests
{
    private static KeyedLimiter Bucket(int tokens, TimeSpan period, TimeProvider? clock = null) => new(
        () => new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = tokens,
            TokensPerPeriod = 1,
            ReplenishmentPeriod = period,
            QueueLimit = 0,
            AutoReplenishment = false,
        }),
        period * tokens,
        clock);

    private static bool Take(KeyedLimiter limiter, string key)
    {
        using var lease = limiter.AttemptAcquire(key);
        return lease.IsAcquired;
    }

    [Fact]
    public async Task A_key_gets_tokens_back_as_time_passes_and_never_more_than_its_bucket()
    {
        using var limiter = Bucket(3, TimeSpan.FromMilliseconds(300));
        Assert.True(Take(limiter, "a") && Take(limiter, "a") && Take(limiter, "a"));
        using (var refused = limiter.AttemptAcquire("a"))
        {
            Assert.False(refused.IsAcquired);
            Assert.True(refused.TryGetMetadata(MetadataName.RetryAfter, out var retry));
            Assert.Equal(TimeSpan.FromMilliseconds(300), retry);
        }

        // Asking again at once gives nothing back; another key has its own bucket.
        Assert.False(Take(limiter, "a"));
        Assert.True(Take(limiter, "b"));

        await Task.Delay(400);
        Assert.True(Take(limiter, "a"));

        // A long quiet spell fills the bucket, no further.
        await Task.Delay(1500);
        Assert.True(Take(limiter, "a") && Take(limiter, "a") && Take(limiter, "a"));
        Assert.False(Take(limiter, "a"));
        Assert.Equal(0, limiter.GetStatistics("a")!.CurrentAvailablePermits);
    }

    [Fact]
    public void Keys_idle_long_enough_to_be_full_again_are_forgotten_and_busy_ones_kept()
    {
        var clock = new FakeTimeProvider();
        using var limiter = Bucket(3, TimeSpan.FromSeconds(20), clock);
        for (var i = 0; i < 1000; i++)
        {
            Assert.True(Take(limiter, "address-" + i));
        }

        clock.Advance(TimeSpan.FromSeconds(61));
        Assert.True(Take(limiter, "busy"));
        Assert.Equal(1001, limiter.Count);

        // Two minutes on, the sweep runs: what was not asked for since is gone.
        clock.Advance(TimeSpan.FromSeconds(60));
        Assert.True(Take(limiter, "new"));
        Assert.Equal(2, limiter.Count);
    }
}
