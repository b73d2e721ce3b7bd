using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.FineTuning;

/// <summary>Datasets and jobs in SQLite (timbre.db in the data directory): what survives a restart.</summary>
/// <remarks>
/// One connection per call (Microsoft.Data.Sqlite pools them) and WAL journaling, so the runner's
/// progress updates never block a reader; every change is one statement, so a crash leaves each
/// row either before or after it. Front nodes on one host may share the data directory: a job is
/// claimed by one node in one statement and carries that node's name, nodes note that they are alive
/// in <c>nodes</c>, and a cancel for a job another node runs is a flag that node picks up.
/// </remarks>
public sealed class JobStore
{
    /// <summary>
    /// The schema, one step a release: a database from an older Timbre is brought forward in order,
    /// never rebuilt, so no job or dataset is lost.
    /// </summary>
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE datasets (
          id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
          job_id TEXT, report TEXT, error TEXT);
        CREATE TABLE jobs (
          id TEXT PRIMARY KEY, kind TEXT NOT NULL, dataset_id TEXT, engine TEXT, voice TEXT, voice_id TEXT,
          options TEXT NOT NULL, force INTEGER NOT NULL, status TEXT NOT NULL, stage TEXT, progress TEXT,
          created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, error TEXT, result TEXT,
          attempts INTEGER NOT NULL DEFAULT 0);
        """,
        "ALTER TABLE jobs ADD COLUMN pid INTEGER;",
        """
        ALTER TABLE jobs ADD COLUMN node TEXT;
        ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE nodes (name TEXT PRIMARY KEY, seen_at TEXT NOT NULL);
        """,
    ];

    // A running job that is this node's: its name, or no name (a job started before jobs carried one).
    private const string Mine = "(node = $node OR node IS NULL)";

    private readonly SqliteFile database;

    public JobStore(IOptions<TimbreOptions> options)
    {
        var root = options.Value.DataDirectory;
        Directory.CreateDirectory(root);
        Root = Path.Combine(root, ".finetune");
        Directory.CreateDirectory(Root);
        database = new SqliteFile(Path.Combine(root, "timbre.db"), Migrations);
        Node = options.Value.Cluster.Node;
    }

    /// <summary>The name this node's jobs carry (Timbre:Cluster:NodeName, or the host name).</summary>
    public string Node { get; }

    /// <summary>Where datasets' and jobs' files live: {data}/.finetune (never listed as a voice).</summary>
    public string Root { get; }

    public string DatasetFolder(string id) => Path.Combine(Root, "datasets", id);

    public string JobFolder(string id) => Path.Combine(Root, "jobs", id);

    // -- datasets ---------------------------------------------------------------------------

    public void InsertDataset(DatasetRecord d)
    {
        using var c = Open();
        Execute(c, "INSERT INTO datasets (id, name, status, created_at, job_id) VALUES ($id, $name, $status, $created, $job)",
            ("$id", d.Id), ("$name", d.Name), ("$status", d.Status), ("$created", Time(d.CreatedAt)), ("$job", d.JobId));
    }

    public DatasetRecord? GetDataset(string id) => QueryDatasets("WHERE id = $id", ("$id", id)).FirstOrDefault();

    public IReadOnlyList<DatasetRecord> ListDatasets() => QueryDatasets("ORDER BY created_at DESC");

    public void UpdateDataset(string id, string status, string? report, string? error)
    {
        using var c = Open();
        Execute(c, "UPDATE datasets SET status = $status, report = COALESCE($report, report), error = $error WHERE id = $id",
            ("$id", id), ("$status", status), ("$report", report), ("$error", error));
    }

    public bool DeleteDataset(string id)
    {
        using var c = Open();
        return Execute(c, "DELETE FROM datasets WHERE id = $id", ("$id", id)) > 0;
    }

    // -- jobs -------------------------------------------------------------------------------

    public void InsertJob(JobRecord j)
    {
        using var c = Open();
        Execute(c, """
            INSERT INTO jobs (id, kind, dataset_id, engine, voice, options, force, status, created_at)
            VALUES ($id, $kind, $dataset, $engine, $voice, $options, $force, $status, $created)
            """,
            ("$id", j.Id), ("$kind", j.Kind), ("$dataset", j.DatasetId), ("$engine", j.Engine), ("$voice", j.Voice),
            ("$options", j.Options), ("$force", j.Force ? 1 : 0), ("$status", j.Status), ("$created", Time(j.CreatedAt)));
    }

    public JobRecord? GetJob(string id) => QueryJobs("WHERE id = $id", ("$id", id)).FirstOrDefault();

    public IReadOnlyList<JobRecord> ListJobs(string kind) => QueryJobs("WHERE kind = $kind ORDER BY created_at DESC", ("$kind", kind));

    /// <summary>Queued jobs, oldest first: the order they run in.</summary>
    public IReadOnlyList<JobRecord> Queued() => QueryJobs("WHERE status = 'queued' ORDER BY created_at");

    /// <summary>Jobs not yet ended that use a dataset (queued, running, or interrupted and resumable).</summary>
    public IReadOnlyList<JobRecord> ActiveFor(string datasetId) =>
        QueryJobs("WHERE dataset_id = $id AND status IN ('queued', 'running', 'interrupted')", ("$id", datasetId));

    /// <summary>Takes a queued job for this node; false when it is no longer queued (another node took it, or it was cancelled).</summary>
    public bool Claim(string id, string stage)
    {
        using var c = Open();
        return Execute(c, """
            UPDATE jobs SET status = 'running', stage = $stage, started_at = $now, finished_at = NULL, error = NULL,
                attempts = attempts + 1, node = $node, cancel_requested = 0, pid = NULL
            WHERE id = $id AND status = 'queued'
            """,
            ("$id", id), ("$stage", stage), ("$now", Time(DateTimeOffset.UtcNow)), ("$node", Node)) > 0;
    }

    /// <summary>Notes that this node is alive, for the others sharing the data directory.</summary>
    public void Seen()
    {
        using var c = Open();
        Execute(c, "INSERT INTO nodes (name, seen_at) VALUES ($node, $now) ON CONFLICT (name) DO UPDATE SET seen_at = $now",
            ("$node", Node), ("$now", Time(DateTimeOffset.UtcNow)));
    }

    /// <summary>Asks the node that runs a job to cancel it; false when the job is not running.</summary>
    public bool RequestCancel(string id)
    {
        using var c = Open();
        return Execute(c, "UPDATE jobs SET cancel_requested = 1 WHERE id = $id AND status = 'running'", ("$id", id)) > 0;
    }

    /// <summary>This node's running jobs that someone asked another node to cancel.</summary>
    public IReadOnlyList<string> CancelsRequested() =>
        QueryJobs("WHERE status = 'running' AND cancel_requested = 1 AND node = $node", ("$node", Node)).Select(j => j.Id).ToList();

    /// <summary>
    /// Marks interrupted the running jobs of nodes not seen for <paramref name="timeout"/>: a node that
    /// crashed, or whose container was replaced under a new name, will not come back for them.
    /// </summary>
    public IReadOnlyList<JobRecord> InterruptOrphans(TimeSpan timeout)
    {
        const string Orphaned = """
            status = 'running' AND node IS NOT NULL AND node != $node
            AND NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.name = jobs.node AND nodes.seen_at >= $since)
            """;
        var since = Time(DateTimeOffset.UtcNow - timeout);
        if (QueryJobs("WHERE " + Orphaned, ("$node", Node), ("$since", since)).Count == 0)
        {
            // The usual answer, found without taking the database's write lock.
            return [];
        }

        using var c = Open();
        using var transaction = c.BeginTransaction(deferred: false);
        var orphans = QueryJobs(c, transaction, "WHERE " + Orphaned, ("$node", Node), ("$since", since));
        if (orphans.Count > 0)
        {
            Interrupt(c, transaction, Orphaned, "its node stopped answering while this job ran; resume it to continue from its last checkpoint", ("$node", Node), ("$since", since));
        }

        transaction.Commit();
        return orphans;
    }

    public void Progressed(string id, string stage, string progress)
    {
        using var c = Open();
        Execute(c, "UPDATE jobs SET stage = $stage, progress = $progress WHERE id = $id", ("$id", id), ("$stage", stage), ("$progress", progress));
    }

    /// <summary>The running recipe's process (and process group) id, so a restart can stop what a crash left running.</summary>
    public void SetPid(string id, int pid)
    {
        using var c = Open();
        Execute(c, "UPDATE jobs SET pid = $pid WHERE id = $id", ("$id", id), ("$pid", pid));
    }

    /// <summary>Process ids of recipes this node was running when it stopped (another node's are not this machine's processes).</summary>
    public IReadOnlyList<int> RunningPids()
    {
        using var c = Open();
        using var command = SqliteFile.Command(c, "SELECT pid FROM jobs WHERE status = 'running' AND pid IS NOT NULL AND " + Mine, ("$node", Node));
        using var reader = command.ExecuteReader();
        var pids = new List<int>();
        while (reader.Read())
        {
            pids.Add((int)reader.GetInt64(0));
        }

        return pids;
    }

    public void SetVoice(string id, string voiceId)
    {
        using var c = Open();
        Execute(c, "UPDATE jobs SET voice_id = $voice WHERE id = $id", ("$id", id), ("$voice", voiceId));
    }

    public void Ended(string id, string status, string? error, string? result)
    {
        using var c = Open();
        Execute(c, "UPDATE jobs SET status = $status, error = $error, result = COALESCE($result, result), finished_at = $now WHERE id = $id",
            ("$id", id), ("$status", status), ("$error", error), ("$result", result), ("$now", Time(DateTimeOffset.UtcNow)));
    }

    /// <summary>Queues an interrupted or failed job again; false when it is in another state.</summary>
    public bool Requeue(string id)
    {
        using var c = Open();
        return Execute(c, "UPDATE jobs SET status = 'queued', error = NULL, finished_at = NULL WHERE id = $id AND status IN ('interrupted', 'failed')", ("$id", id)) > 0;
    }

    /// <summary>Cancels a job still in the queue; false when it has started or ended.</summary>
    public bool CancelQueued(string id)
    {
        using var c = Open();
        return Execute(c, "UPDATE jobs SET status = 'cancelled', finished_at = $now WHERE id = $id AND status IN ('queued', 'interrupted')",
            ("$id", id), ("$now", Time(DateTimeOffset.UtcNow))) > 0;
    }

    /// <summary>At start-up: whatever this node was running when it stopped did not finish (other nodes' jobs run on).</summary>
    public IReadOnlyList<JobRecord> InterruptRunning()
    {
        const string Running = "status = 'running' AND " + Mine;
        using var c = Open();
        using var transaction = c.BeginTransaction(deferred: false);
        var running = QueryJobs(c, transaction, "WHERE " + Running, ("$node", Node));
        Interrupt(c, transaction, Running, "the server stopped while this job ran; resume it to continue from its last checkpoint", ("$node", Node));
        transaction.Commit();
        return running;
    }

    // The jobs matching `where` become interrupted, and the datasets they were preparing with them.
    private static void Interrupt(SqliteConnection c, SqliteTransaction transaction, string where, string error, params (string Name, object? Value)[] parameters)
    {
        using (var datasets = SqliteFile.Command(c, $"UPDATE datasets SET status = 'interrupted' WHERE status = 'preparing' AND job_id IN (SELECT id FROM jobs WHERE {where})", parameters))
        {
            datasets.Transaction = transaction;
            datasets.ExecuteNonQuery();
        }

        using var jobs = SqliteFile.Command(c, $"UPDATE jobs SET status = 'interrupted', error = $error, finished_at = $now WHERE {where}",
            [.. parameters, ("$error", error), ("$now", Time(DateTimeOffset.UtcNow))]);
        jobs.Transaction = transaction;
        jobs.ExecuteNonQuery();
    }

    // -- plumbing ---------------------------------------------------------------------------

    private SqliteConnection Open() => database.Open();

    private static int Execute(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters) =>
        SqliteFile.Execute(connection, sql, parameters);

    private List<DatasetRecord> QueryDatasets(string where, params (string Name, object? Value)[] parameters)
    {
        using var c = Open();
        using var command = c.CreateCommand();
        command.CommandText = "SELECT id, name, status, created_at, job_id, report, error FROM datasets " + where;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        using var reader = command.ExecuteReader();
        var rows = new List<DatasetRecord>();
        while (reader.Read())
        {
            rows.Add(new DatasetRecord(reader.GetString(0), reader.GetString(1), reader.GetString(2), ParseTime(reader.GetString(3)))
            {
                JobId = Text(reader, 4),
                Report = Text(reader, 5),
                Error = Text(reader, 6),
            });
        }

        return rows;
    }

    private List<JobRecord> QueryJobs(string where, params (string Name, object? Value)[] parameters)
    {
        using var c = Open();
        return QueryJobs(c, null, where, parameters);
    }

    private static List<JobRecord> QueryJobs(SqliteConnection c, SqliteTransaction? transaction, string where, params (string Name, object? Value)[] parameters)
    {
        using var command = SqliteFile.Command(c, """
            SELECT id, kind, dataset_id, engine, voice, voice_id, options, force, status, stage, progress,
                   created_at, started_at, finished_at, error, result, attempts, node FROM jobs
            """ + " " + where, parameters);
        command.Transaction = transaction;

        using var reader = command.ExecuteReader();
        var rows = new List<JobRecord>();
        while (reader.Read())
        {
            rows.Add(new JobRecord(reader.GetString(0), reader.GetString(1), Text(reader, 2), Text(reader, 3), Text(reader, 4), reader.GetString(6), reader.GetInt64(7) != 0, reader.GetString(8), ParseTime(reader.GetString(11)))
            {
                VoiceId = Text(reader, 5),
                Stage = Text(reader, 9),
                Progress = Text(reader, 10),
                StartedAt = Text(reader, 12) is { } s ? ParseTime(s) : null,
                FinishedAt = Text(reader, 13) is { } f ? ParseTime(f) : null,
                Error = Text(reader, 14),
                Result = Text(reader, 15),
                Attempts = (int)reader.GetInt64(16),
                Node = Text(reader, 17),
            });
        }

        return rows;
    }

    private static string? Text(SqliteDataReader reader, int i) => reader.IsDBNull(i) ? null : reader.GetString(i);

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static DateTimeOffset ParseTime(string s) => DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
}

/// <summary>A dataset as stored; Report is prepare's report.json once it has run.</summary>
public sealed record DatasetRecord(string Id, string Name, string Status, DateTimeOffset CreatedAt)
{
    public string? JobId { get; init; }

    public string? Report { get; init; }

    public string? Error { get; init; }

    /// <summary>Minutes of training speech the preparation kept; 0 before it has run.</summary>
    public double TrainMinutes => Report is null ? 0 : JsonDocument.Parse(Report).RootElement.TryGetProperty("minutes_train", out var m) ? m.GetDouble() : 0;
}

/// <summary>A job as stored: prepare (a dataset) or finetune (train, evaluate, deploy).</summary>
public sealed record JobRecord(string Id, string Kind, string? DatasetId, string? Engine, string? Voice, string Options, bool Force, string Status, DateTimeOffset CreatedAt)
{
    public string? VoiceId { get; init; }

    public string? Stage { get; init; }

    public string? Progress { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? FinishedAt { get; init; }

    public string? Error { get; init; }

    public string? Result { get; init; }

    public int Attempts { get; init; }

    /// <summary>The node that runs or last ran the job (Timbre:Cluster:NodeName); null before it first ran.</summary>
    public string? Node { get; init; }

    public bool IsGpu => Engine is "qwen3" or "xtts";

    public bool HasEnded => Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled;
}

/// <summary>The states a job passes through.</summary>
public static class JobStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    public const string Interrupted = "interrupted";
}
