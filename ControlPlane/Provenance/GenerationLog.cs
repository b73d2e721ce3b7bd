using System.Globalization;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Provenance;

/// <summary>One clip Timbre made, as the generation log keeps it.</summary>
/// <param name="Id">The clip's id (clip_ and 32 hex digits); never in the audio itself.</param>
/// <param name="Tag">The payload the audio carries, derived from the id with the install's key.</param>
/// <param name="CreatedAt">When the request started.</param>
/// <param name="Voice">The voice's id.</param>
/// <param name="Engine">The engine that spoke.</param>
/// <param name="ApiKey">The API key's public id (key-…), or "anonymous" with authentication off.</param>
/// <param name="TextSha256">SHA-256 of the text as requested, so the text itself is not kept.</param>
/// <param name="AudioSha256">SHA-256 of the clip as 16-bit little-endian PCM (what pcm responses and the hub carry), once it finished.</param>
/// <param name="Seconds">The audio's length, once it finished.</param>
public sealed record ClipRecord(
    string Id, uint Tag, DateTimeOffset CreatedAt, string Voice, string Engine, string ApiKey, string TextSha256,
    string? AudioSha256 = null, double? Seconds = null);

/// <summary>
/// The generation log, {data}/provenance.db: clip id → when, which voice and engine, which API key,
/// hashes of the text and audio. Detection maps a decoded payload back to its clip here.
/// </summary>
/// <remarks>
/// A separate database from timbre.db so its schema steps are its own (<see cref="SqliteFile"/>), one
/// statement per change. ops/provenance reads it with Python's sqlite3 when no server runs.
/// </remarks>
public sealed class GenerationLog
{
    public const string FileName = "provenance.db";

    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE clips (
          id TEXT PRIMARY KEY, tag INTEGER NOT NULL, created_at TEXT NOT NULL, voice TEXT NOT NULL,
          engine TEXT NOT NULL, api_key TEXT NOT NULL, text_sha256 TEXT NOT NULL, audio_sha256 TEXT, seconds REAL);
        CREATE INDEX clips_by_tag ON clips (tag);
        """,
    ];

    private readonly SqliteFile database;

    public GenerationLog(IOptions<TimbreOptions> options)
    {
        Directory.CreateDirectory(options.Value.DataDirectory);
        database = new SqliteFile(Path.Combine(options.Value.DataDirectory, FileName), Migrations);
    }

    public void Record(ClipRecord clip)
    {
        using var c = database.Open();
        SqliteFile.Execute(c, "INSERT INTO clips (id, tag, created_at, voice, engine, api_key, text_sha256) VALUES ($id, $tag, $created, $voice, $engine, $key, $text)",
            ("$id", clip.Id), ("$tag", (long)clip.Tag), ("$created", clip.CreatedAt.ToString("O", CultureInfo.InvariantCulture)),
            ("$voice", clip.Voice), ("$engine", clip.Engine), ("$key", clip.ApiKey), ("$text", clip.TextSha256));
    }

    /// <summary>Adds what is known once the stream ended: the audio's hash and length.</summary>
    public void Finish(string id, string audioSha256, double seconds)
    {
        using var c = database.Open();
        SqliteFile.Execute(c, "UPDATE clips SET audio_sha256 = $audio, seconds = $seconds WHERE id = $id",
            ("$id", id), ("$audio", audioSha256), ("$seconds", seconds));
    }

    /// <summary>The clips whose payload is <paramref name="tag"/>, newest first (two ids share a tag about once in four billion).</summary>
    public IReadOnlyList<ClipRecord> FindByTag(uint tag)
    {
        using var c = database.Open();
        using var command = SqliteFile.Command(c, "SELECT id, tag, created_at, voice, engine, api_key, text_sha256, audio_sha256, seconds FROM clips WHERE tag = $tag ORDER BY created_at DESC",
            ("$tag", (long)tag));
        using var reader = command.ExecuteReader();
        var found = new List<ClipRecord>();
        while (reader.Read())
        {
            found.Add(new ClipRecord(
                reader.GetString(0), (uint)reader.GetInt64(1), DateTimeOffset.Parse(reader.GetString(2), CultureInfo.InvariantCulture),
                reader.GetString(3), reader.GetString(4), reader.GetString(5), reader.GetString(6),
                reader.IsDBNull(7) ? null : reader.GetString(7), reader.IsDBNull(8) ? null : reader.GetDouble(8)));
        }

        return found;
    }
}
