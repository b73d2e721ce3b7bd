namespace Timbre.ControlPlane.FineTuning;

/// <summary>What a node's runner does for the nodes it shares the data directory with (README, "Scaling out").</summary>
public sealed partial class JobRunner
{
    // When this node last noted it is alive (a timestamp; 0, long ago, before the first time).
    private long lastSeen;

    /// <summary>
    /// Each pass of the runner (every 2 s at most): notes that this node is alive (every quarter of
    /// Timbre:Cluster:NodeTimeoutSeconds), marks interrupted the jobs of nodes not seen for that long,
    /// and cancels this node's jobs that were cancelled through another node.
    /// </summary>
    private void LookAtOtherNodes()
    {
        var timeout = TimeSpan.FromSeconds(options.Value.Cluster.NodeTimeoutSeconds);
        if (TimeProvider.System.GetElapsedTime(lastSeen) >= timeout / 4)
        {
            store.Seen();
            lastSeen = TimeProvider.System.GetTimestamp();
        }

        foreach (var job in store.InterruptOrphans(timeout))
        {
            events.Append(job.Id, Status(JobStatus.Interrupted, "its node stopped answering while this job ran; resume it to continue from its last checkpoint"));
            LogOrphan(job.Id, job.Node ?? "?");
        }

        foreach (var id in store.CancelsRequested())
        {
            if (running.TryGetValue(id, out var job) && !job.Cts.IsCancellationRequested)
            {
                cancelRequested[id] = true;
                job.Cts.Cancel();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {Id} was running on node {Node}, which has not been seen for a while; marked interrupted")]
    private partial void LogOrphan(string id, string node);
}
