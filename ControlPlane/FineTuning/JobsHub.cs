using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.SignalR;

namespace Timbre.ControlPlane.FineTuning;

/// <summary>/hubs/jobs: a job's progress events, the same as its SSE route, as a SignalR stream.</summary>
/// <remarks>
/// Each event is its JSON text: the events' fields vary by stage and engine, and a string reads the
/// same over the JSON and MessagePack protocols (clients JSON.parse it).
/// </remarks>
public sealed class JobsHub(JobStore store, JobEvents events) : Hub
{
    /// <summary>Every event of the job after <paramref name="after"/> (0: from the start), then live ones until it ends.</summary>
    public async IAsyncEnumerable<string> Events(string jobId, long after, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (store.GetJob(jobId) is null)
        {
            throw new HubException($"No job with id '{jobId}'. GET /v1/finetune/jobs lists them.");
        }

        await foreach (var e in events.ReadAsync(jobId, after, () => store.GetJob(jobId)?.Status, cancellationToken))
        {
            yield return e.GetRawText();
        }
    }
}
