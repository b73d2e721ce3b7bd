using System.Net;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Observability;

namespace Timbre.ControlPlane.Security;

/// <summary>Wrong API keys counted per remote address, so that keys cannot be guessed online.</summary>
/// <remarks>
/// An address that has sent <c>Timbre:Auth:FailedAttemptsPerMinute</c> wrong keys in the current minute
/// gets 429 for every key it presents until the minute is over, the right one included: answering a
/// right guess with 200 while refusing wrong ones would leave guessing as fast as before. The address
/// is logged once, when it reaches the limit, not once per attempt.
/// </remarks>
public sealed partial class FailedKeyAttempts : IDisposable
{
    private readonly PartitionedRateLimiter<string> limiter;
    private readonly int perMinute;
    private readonly TimbreMetrics metrics;
    private readonly ILogger<FailedKeyAttempts> logger;

    public FailedKeyAttempts(IOptions<TimbreOptions> options, TimbreMetrics metrics, ILogger<FailedKeyAttempts> logger)
    {
        perMinute = options.Value.Auth.FailedAttemptsPerMinute;
        this.metrics = metrics;
        this.logger = logger;
        limiter = perMinute == 0
            ? new Unlimited()
            : new KeyedLimiter(
                () => new FixedWindowRateLimiter(new FixedWindowRateLimiterOptions
                {
                    PermitLimit = perMinute,
                    Window = TimeSpan.FromMinutes(1),
                    QueueLimit = 0,
                    AutoReplenishment = false,
                }),
                TimeSpan.FromMinutes(1));
    }

    /// <summary>How long the address must wait before its keys are checked again; null when they are checked now.</summary>
    public TimeSpan? Refused(IPAddress? address)
    {
        // Asking for no permit reports the window's state without spending one.
        using var probe = limiter.AttemptAcquire(Key(address), 0);
        if (probe.IsAcquired)
        {
            return null;
        }

        metrics.Rejected("failed_keys");
        return probe.TryGetMetadata(MetadataName.RetryAfter, out var retry) ? retry : TimeSpan.FromMinutes(1);
    }

    /// <summary>Counts a wrong key from <paramref name="address"/>.</summary>
    public void Failed(IPAddress? address)
    {
        var key = Key(address);
        using var lease = limiter.AttemptAcquire(key);
        if (lease.IsAcquired && limiter.GetStatistics(key)?.CurrentAvailablePermits == 0)
        {
            LogLimitReached(logger, key, perMinute);
        }
    }

    private static string Key(IPAddress? address) => address?.ToString() ?? "unknown";

    public void Dispose() => limiter.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Address} sent {Count} wrong API keys within a minute; its keys are refused with 429 until the minute is over")]
    private static partial void LogLimitReached(ILogger logger, string address, int count);
}
