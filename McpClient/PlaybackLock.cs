namespace Timbre.McpClient;

/// <summary>One voice at a time across every McpClient process of this user, and stop() reaching whichever is playing.</summary>
/// <remarks>
/// The lock is an exclusively opened file (.NET takes an advisory flock for FileShare.None on Unix),
/// so it is released by the kernel even when a process dies. A stop request is a file the playing
/// process looks for while it plays.
/// </remarks>
public sealed class PlaybackLock(string directory)
{
    private string LockPath => Path.Combine(directory, "playback.lock");

    private string StopPath => Path.Combine(directory, "playback.stop");

    /// <summary>The folder for this user's lock: TIMBRE_STATE_DIR, else one under the temporary folder.</summary>
    public static string DefaultDirectory() =>
        Environment.GetEnvironmentVariable("TIMBRE_STATE_DIR") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Path.GetTempPath(), $"timbre-{Environment.UserName}");

    /// <summary>Waits until no other process is playing; the lease ends this process's turn.</summary>
    public async Task<IDisposable> AcquireAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(directory);
        while (true)
        {
            if (TryOpen() is { } held)
            {
                // A stop meant for a playback that already ended must not stop this one.
                File.Delete(StopPath);
                return held;
            }

            await Task.Delay(50, ct);
        }
    }

    /// <summary>True (once) when another process asked the current playback to stop.</summary>
    public bool TakeStopRequest()
    {
        if (!File.Exists(StopPath))
        {
            return false;
        }

        File.Delete(StopPath);
        return true;
    }

    /// <summary>Asks whichever process is playing to stop; false when nothing is playing.</summary>
    public bool RequestStop()
    {
        Directory.CreateDirectory(directory);
        if (TryOpen() is { } free)
        {
            free.Dispose();
            return false;
        }

        File.WriteAllText(StopPath, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return true;
    }

    private FileStream? TryOpen()
    {
        try
        {
            return new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }
}
