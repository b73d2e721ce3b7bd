using System.Threading.RateLimiting;
using RedisRateLimiting;
using StackExchange.Redis;

namespace Timbre.ControlPlane.Cluster;

/// <summary>
/// The per-key request limit counted across the cluster: a token bucket per API key in Redis
/// (RedisRateLimiting), with this node's own bucket standing in whenever Redis cannot answer, so a
/// lost Redis never refuses or stalls a request.
/// </summary>
public sealed class ClusterRateLimiter : PartitionedRateLimiter<string>
{
    private readonly PartitionedRateLimiter<string> local;
    private readonly PartitionedRateLimiter<string> shared;
    private readonly ClusterLink cluster;
    private readonly TimeSpan period;

    public ClusterRateLimiter(PartitionedRateLimiter<string> local, ClusterLink cluster, int tokenLimit, int tokensPerPeriod, TimeSpan period)
    {
        this.local = local;
        this.cluster = cluster;
        this.period = period;
        shared = PartitionedRateLimiter.Create<string, string>(client => RedisRateLimitPartition.GetTokenBucketRateLimiter("timbre:limit:" + client, _ => new RedisTokenBucketRateLimiterOptions
        {
            ConnectionMultiplexerFactory = () => cluster.ConnectionAsync().GetAwaiter().GetResult()!,
            TokenLimit = tokenLimit,
            TokensPerPeriod = tokensPerPeriod,
            ReplenishmentPeriod = period,
        }));
    }

    public override RateLimiterStatistics? GetStatistics(string resource) => local.GetStatistics(resource);

    /// <remarks>
    /// Redis answers only asynchronously (RedisRateLimiting's own AttemptAcquire always fails): with
    /// Redis up this fails without a retry time, which sends ASP.NET's middleware, and Timbre's hub,
    /// on to <see cref="AcquireAsyncCore"/>, where the shared bucket decides.
    /// </remarks>
    protected override RateLimitLease AttemptAcquireCore(string resource, int permitCount) =>
        Connected() ? new Undecided() : local.AttemptAcquire(resource, permitCount);

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(string resource, int permitCount, CancellationToken cancellationToken)
    {
        if (Connected())
        {
            try
            {
                return WithRetryAfter(await shared.AcquireAsync(resource, permitCount, cancellationToken));
            }
            catch (RedisException e)
            {
                cluster.Lost(e.Message);
            }
        }

        return await local.AcquireAsync(resource, permitCount, cancellationToken);
    }

    /// <summary>Only a connection that answers now: a request never waits for Redis to come back.</summary>
    private bool Connected() => cluster.ConnectionAsync() is { IsCompletedSuccessfully: true, Result.IsConnected: true };

    /// <summary>A refusal says when to retry (one replenishment), as the local bucket's does.</summary>
    private RateLimitLease WithRetryAfter(RateLimitLease lease)
    {
        if (lease.IsAcquired || lease.TryGetMetadata(MetadataName.RetryAfter, out _))
        {
            return lease;
        }

        lease.Dispose();
        return new Refused(period);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            shared.Dispose();
            local.Dispose();
        }

        base.Dispose(disposing);
    }

    private sealed class Undecided : RateLimitLease
    {
        public override bool IsAcquired => false;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }

    private sealed class Refused(TimeSpan retryAfter) : RateLimitLease
    {
        public override bool IsAcquired => false;

        public override IEnumerable<string> MetadataNames => [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = metadataName == MetadataName.RetryAfter.Name ? retryAfter : null;
            return metadata is not null;
        }
    }
}
