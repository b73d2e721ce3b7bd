using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Timbre.ControlPlane.FineTuning;

/// <summary>Each job's progress events: appended to events.jsonl in the job's folder and fanned out live.</summary>
/// <remarks>
/// A reader (the SSE route, the jobs hub) first gets every event already written — after a restart,
/// all of them — and then the live ones, until the job ends. Events carry a sequence number, so a
/// client that reconnects with Last-Event-ID misses nothing and sees nothing twice. Readers follow the
/// file itself, woken at once by this node's appends and every half second otherwise: a job that runs
/// on another node sharing the data directory reaches this node's clients too.
/// </remarks>
public sealed class JobEvents(JobStore store)
{
    private const string FileName = "events.jsonl";
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(500);

    private readonly ConcurrentDictionary<string, JobLog> logs = new();

    /// <summary>Stamps the event with the job id and the next sequence number, stores it and wakes every reader.</summary>
    public JsonObject Append(string jobId, JsonObject evt)
    {
        var log = Log(jobId);
        lock (log)
        {
            if (Length(log.Path) != log.Length)
            {
                // Another node appended since (it ran the job, or marked it interrupted): count on from there.
                log.Last = Stored(log.Path).Select(Seq).DefaultIfEmpty(0).Max();
            }

            evt["seq"] = ++log.Last;
            evt["job"] = jobId;
            evt["time"] ??= DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
            Directory.CreateDirectory(Path.GetDirectoryName(log.Path)!);
            File.AppendAllText(log.Path, evt.ToJsonString() + "\n");
            log.Length = Length(log.Path);
            foreach (var reader in log.Readers)
            {
                reader.Writer.TryWrite(true);
            }

            return evt;
        }
    }

    /// <summary>
    /// The job's events after <paramref name="after"/>, then live ones until an event that ends the job.
    /// An ending event followed by more (a job interrupted, then resumed) does not end the reading, nor
    /// does one while <paramref name="status"/> (the job's status now) says it is queued or running again.
    /// </summary>
    public async IAsyncEnumerable<JsonElement> ReadAsync(string jobId, long after, Func<string?> status, [EnumeratorCancellation] CancellationToken ct)
    {
        var log = Log(jobId);
        // A wake-up, not the events: they are always read from the file, in its order.
        var appended = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
        lock (log)
        {
            log.Readers.Add(appended);
        }

        try
        {
            var tail = new Tail(log.Path);
            var last = after;
            var lastWasEnd = false;
            var endedBefore = false;
            while (true)
            {
                foreach (var e in tail.ReadNew())
                {
                    if (Seq(e) <= last)
                    {
                        continue;
                    }

                    last = Seq(e);
                    lastWasEnd = IsEnd(e);
                    yield return e;
                }

                // A job's status is stored just before its ending event is written, so the event read
                // here is never newer than the status.
                var now = status();
                var again = now is JobStatus.Queued or JobStatus.Running;
                if (lastWasEnd && !again)
                {
                    yield break;
                }

                if (!lastWasEnd && !again)
                {
                    // A job that ended with no ending event in its file (written before there were any, or
                    // its node stopped in between): the reader looks at the file once more before giving up.
                    if (endedBefore)
                    {
                        yield break;
                    }

                    endedBefore = true;
                }

                using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                wait.CancelAfter(Poll);
                try
                {
                    await appended.Reader.ReadAsync(wait.Token);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    // Half a second without an append here: look at the file for another node's.
                }
            }
        }
        finally
        {
            lock (log)
            {
                log.Readers.Remove(appended);
            }
        }
    }

    /// <summary>True for the status event that ends a job (or interrupts it).</summary>
    public static bool IsEnd(JsonElement e) =>
        e.TryGetProperty("type", out var t) && t.GetString() == "status"
        && e.TryGetProperty("status", out var s) && s.GetString() is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled or JobStatus.Interrupted;

    private static long Seq(JsonElement e) => e.TryGetProperty("seq", out var s) ? s.GetInt64() : 0;

    private static long Length(string path) => File.Exists(path) ? new FileInfo(path).Length : 0;

    private JobLog Log(string jobId) => logs.GetOrAdd(jobId, id =>
    {
        var path = Path.Combine(store.JobFolder(id), FileName);
        if (Length(path) > 0 && LastByte(path) != (byte)'\n')
        {
            // A line cut short by a crash mid-write: end it, so the next event starts a line of its own.
            File.AppendAllText(path, "\n");
        }

        return new JobLog(path) { Last = Stored(path).Select(Seq).DefaultIfEmpty(0).Max(), Length = Length(path) };
    });

    private static int LastByte(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        file.Seek(-1, SeekOrigin.End);
        return file.ReadByte();
    }

    private static IEnumerable<JsonElement> Stored(string path)
    {
        if (!File.Exists(path))
        {
            yield break;
        }

        foreach (var line in File.ReadLines(path))
        {
            if (Parse(line) is { } e)
            {
                yield return e;
            }
        }
    }

    private static JsonElement? Parse(string line)
    {
        try
        {
            return JsonDocument.Parse(line).RootElement.Clone();
        }
        catch (JsonException)
        {
            // A line cut short by a crash mid-write: the events before it stand.
            return null;
        }
    }

    /// <summary>Reads a job's file from where it left off, whole lines only (a line being written is read when it ends).</summary>
    private sealed class Tail(string path)
    {
        private long offset;

        public List<JsonElement> ReadNew()
        {
            var read = new List<JsonElement>();
            if (!File.Exists(path))
            {
                return read;
            }

            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            if (file.Length <= offset)
            {
                return read;
            }

            file.Seek(offset, SeekOrigin.Begin);
            var bytes = new byte[file.Length - offset];
            file.ReadExactly(bytes);
            var end = Array.LastIndexOf(bytes, (byte)'\n');
            if (end < 0)
            {
                return read;
            }

            offset += end + 1;
            foreach (var line in Encoding.UTF8.GetString(bytes, 0, end).Split('\n'))
            {
                if (line.Length > 0 && Parse(line) is { } e)
                {
                    read.Add(e);
                }
            }

            return read;
        }
    }

    private sealed class JobLog(string path)
    {
        public string Path { get; } = path;

        public long Last { get; set; }

        // The file's length after this node's last append: another length means another node wrote.
        public long Length { get; set; }

        public List<Channel<bool>> Readers { get; } = [];
    }
}
