using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Timbre.ControlPlane.FineTuning;

/// <summary>Each job's progress events: appended to events.jsonl in the job's folder and fanned out live.</summary>
/// <remarks>
/// A reader (the SSE route, the jobs hub) first gets every event already written — after a restart,
/// all of them — and then the live ones, until the job ends. Events carry a sequence number, so a
/// client that reconnects with Last-Event-ID misses nothing and sees nothing twice.
/// </remarks>
public sealed class JobEvents(JobStore store)
{
    private const string FileName = "events.jsonl";

    private readonly ConcurrentDictionary<string, JobLog> logs = new();

    /// <summary>Stamps the event with the job id and the next sequence number, stores it and sends it to every reader.</summary>
    public JsonObject Append(string jobId, JsonObject evt)
    {
        var log = Log(jobId);
        lock (log)
        {
            evt["seq"] = ++log.Last;
            evt["job"] = jobId;
            evt["time"] ??= DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
            var line = evt.ToJsonString();
            Directory.CreateDirectory(Path.GetDirectoryName(log.Path)!);
            File.AppendAllText(log.Path, line + "\n");
            var element = JsonDocument.Parse(line).RootElement.Clone();
            foreach (var reader in log.Readers)
            {
                // Unbounded per reader: events are a few a second at most and small; a reader that
                // stops reading is removed when its request ends.
                reader.Writer.TryWrite(element);
            }

            return evt;
        }
    }

    /// <summary>The job's events after <paramref name="after"/>, then live ones until an event that ends the job.</summary>
    public async IAsyncEnumerable<JsonElement> ReadAsync(string jobId, long after, Func<bool> ended, [EnumeratorCancellation] CancellationToken ct)
    {
        var log = Log(jobId);
        var live = Channel.CreateUnbounded<JsonElement>(new UnboundedChannelOptions { SingleReader = true });
        List<JsonElement> written;
        lock (log)
        {
            // Subscribe and read the file under the same lock: no event can fall between the two.
            log.Readers.Add(live);
            written = Stored(log.Path).Where(e => Seq(e) > after).ToList();
        }

        try
        {
            var last = after;
            foreach (var e in written)
            {
                last = Seq(e);
                yield return e;
                if (IsEnd(e))
                {
                    yield break;
                }
            }

            if (ended())
            {
                yield break;
            }

            await foreach (var e in live.Reader.ReadAllAsync(ct))
            {
                if (Seq(e) <= last)
                {
                    continue;
                }

                last = Seq(e);
                yield return e;
                if (IsEnd(e))
                {
                    yield break;
                }
            }
        }
        finally
        {
            lock (log)
            {
                log.Readers.Remove(live);
            }
        }
    }

    /// <summary>True for the status event that ends a job (or interrupts it).</summary>
    public static bool IsEnd(JsonElement e) =>
        e.TryGetProperty("type", out var t) && t.GetString() == "status"
        && e.TryGetProperty("status", out var s) && s.GetString() is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled or JobStatus.Interrupted;

    private static long Seq(JsonElement e) => e.TryGetProperty("seq", out var s) ? s.GetInt64() : 0;

    private JobLog Log(string jobId) => logs.GetOrAdd(jobId, id =>
    {
        var path = Path.Combine(store.JobFolder(id), FileName);
        var last = Stored(path).Select(Seq).DefaultIfEmpty(0).Max();
        return new JobLog(path) { Last = last };
    });

    private static IEnumerable<JsonElement> Stored(string path)
    {
        if (!File.Exists(path))
        {
            yield break;
        }

        foreach (var line in File.ReadLines(path))
        {
            JsonElement e;
            try
            {
                e = JsonDocument.Parse(line).RootElement.Clone();
            }
            catch (JsonException)
            {
                // A line cut short by a crash mid-write: the events before it stand.
                continue;
            }

            yield return e;
        }
    }

    private sealed class JobLog(string path)
    {
        public string Path { get; } = path;

        public long Last { get; set; }

        public List<Channel<JsonElement>> Readers { get; } = [];
    }
}
