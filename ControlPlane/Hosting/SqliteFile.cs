using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Timbre.ControlPlane.Hosting;

/// <summary>
/// One SQLite database file of the data directory, as Timbre's stores use them: WAL journaling, one
/// pooled connection per call, writers that wait for each other instead of failing, and a schema
/// brought forward one step a release (PRAGMA user_version counts the steps taken), never rebuilt.
/// </summary>
public sealed class SqliteFile
{
    private readonly string connectionString;

    public SqliteFile(string path, IReadOnlyList<string> migrations)
    {
        connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true }.ToString();
        using var connection = Open();
        Execute(connection, "PRAGMA journal_mode = WAL;");
        while (true)
        {
            // Each step reads the version inside its own write transaction (BEGIN IMMEDIATE): two nodes
            // that share the data directory and start together take the steps one after the other
            // instead of both running the same step.
            using var transaction = connection.BeginTransaction(deferred: false);
            using var read = connection.CreateCommand();
            read.Transaction = transaction;
            read.CommandText = "PRAGMA user_version";
            var step = Convert.ToInt32(read.ExecuteScalar(), CultureInfo.InvariantCulture);
            if (step >= migrations.Count)
            {
                return;
            }

            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = migrations[step] + $"\nPRAGMA user_version = {step + 1};";
            command.ExecuteNonQuery();
            transaction.Commit();
        }
    }

    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(connectionString);
        connection.Open();
        using var busy = connection.CreateCommand();
        // Writers queue for a while rather than fail when two write at once.
        busy.CommandText = "PRAGMA busy_timeout = 5000";
        busy.ExecuteNonQuery();
        return connection;
    }

    /// <summary>Runs one statement with named parameters (null is SQL NULL); returns the rows it changed.</summary>
    public static int Execute(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, sql, parameters);
        return command.ExecuteNonQuery();
    }

    /// <summary>A command with named parameters, for a query the caller reads.</summary>
    public static SqliteCommand Command(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }
}
