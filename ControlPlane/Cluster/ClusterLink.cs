using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Cluster;

/// <summary>
/// This node's connection to the cluster's Redis (Timbre:Cluster:Redis), when one is configured: the
/// SignalR backplane has its own; this one carries what the backplane cannot (a hub stream's cancel
/// from another node, the one-stream-per-RequestId rule across nodes).
/// </summary>
/// <remarks>
/// Redis being down never stops speech: calls fail at once (no backlog), callers fall back to what this
/// node knows, the loss is logged once, and /ready's detail shows it until the connection is back.
/// </remarks>
public sealed partial class ClusterLink : IAsyncDisposable
{
    private readonly ILogger<ClusterLink> logger;
    private readonly Lazy<Task<ConnectionMultiplexer?>> connection;
    private int lost;

    public ClusterLink(IOptions<TimbreOptions> options, ILogger<ClusterLink> logger)
    {
        this.logger = logger;
        Configuration = options.Value.Cluster.Redis;
        connection = new(ConnectAsync);
    }

    /// <summary>This node's name in the cluster: unique per process.</summary>
    public string NodeId { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("n")[..6]}";

    public string? Configuration { get; }

    public bool Enabled => !string.IsNullOrWhiteSpace(Configuration);

    /// <summary>For /ready: null without a cluster, else "connected" or why not.</summary>
    public string? State => !Enabled ? null
        : connection.IsValueCreated && connection.Value.IsCompletedSuccessfully && connection.Value.Result is { IsConnected: true } ? "connected"
        : "Redis unreachable: cancels, RequestIds and the per-key limit are checked on this node only, and hub messages from other nodes are lost";

    /// <summary>Options for StackExchange.Redis that never queue a command while Redis is down.</summary>
    public static ConfigurationOptions OptionsFor(string configuration)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ConnectTimeout = 2000;
        options.ClientName = "timbre";
        return options;
    }

    /// <summary>The connection, or null without a cluster; it reconnects by itself after a loss.</summary>
    public Task<ConnectionMultiplexer?> ConnectionAsync() => Enabled ? connection.Value : Task.FromResult<ConnectionMultiplexer?>(null);

    private async Task<ConnectionMultiplexer?> ConnectAsync()
    {
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(OptionsFor(Configuration!));
        multiplexer.ConnectionFailed += (_, e) => Lost(e.Exception?.Message ?? e.FailureType.ToString());
        multiplexer.ConnectionRestored += (_, _) =>
        {
            if (Interlocked.Exchange(ref lost, 0) == 1)
            {
                LogRestored(logger);
            }
        };
        if (!multiplexer.IsConnected)
        {
            Lost("not reachable at start");
        }

        return multiplexer;
    }

    /// <summary>Logs the loss of Redis once, until it is back.</summary>
    public void Lost(string why)
    {
        if (Interlocked.Exchange(ref lost, 1) == 0)
        {
            LogLost(logger, why);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (connection.IsValueCreated && await connection.Value is { } multiplexer)
        {
            await multiplexer.DisposeAsync();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis (Timbre:Cluster:Redis) is unreachable: {Why}. Speech goes on; cancels, RequestIds and the per-key limit are checked on this node only until it is back.")]
    private static partial void LogLost(ILogger logger, string why);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis (Timbre:Cluster:Redis) is reachable again")]
    private static partial void LogRestored(ILogger logger);
}
