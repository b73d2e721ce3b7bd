using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using NAudio.Wave;

namespace Timbre.McpClient;

/// <summary>How audio reaches the speaker: a command that reads 16-bit PCM from stdin, or a WAV file handed to afplay.</summary>
public sealed record PlayerCommand(string Template, bool ViaWavFile, string Description)
{
    /// <summary>TIMBRE_PLAYER when set; else the first streaming player found on PATH for this platform.</summary>
    public static PlayerCommand Choose(string? configured)
    {
        if (configured is not null)
        {
            return new(configured, false, "TIMBRE_PLAYER");
        }

        var candidates = RuntimeInformation.IsOSPlatform(OSPlatform.OSX)
            ? new[]
            {
                ("play", "play -q -t raw -r {rate} -e signed -b 16 -c {channels} -"),
                ("ffplay", "ffplay -nodisp -autoexit -loglevel quiet -f s16le -ar {rate} -ac {channels} -i -"),
            }
            : new[]
            {
                ("pw-play", "pw-play --rate {rate} --channels {channels} --format s16 -"),
                ("paplay", "paplay --raw --rate={rate} --channels={channels} --format=s16le"),
                ("aplay", "aplay -q -t raw -f S16_LE -r {rate} -c {channels}"),
                ("play", "play -q -t raw -r {rate} -e signed -b 16 -c {channels} -"),
            };
        foreach (var (program, template) in candidates)
        {
            if (OnPath(program))
            {
                return new(template, false, program);
            }
        }

        return RuntimeInformation.IsOSPlatform(OSPlatform.OSX) && OnPath("afplay")
            ? new("afplay {file}", true, "afplay (no streaming player found: install SoX or ffmpeg with Homebrew to hear speech as it is made)")
            : throw new PlayerException("No audio player found: install SoX (play), ffmpeg (ffplay), PipeWire (pw-play), PulseAudio (paplay) or ALSA (aplay), or set TIMBRE_PLAYER.");
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, program)));
}

/// <summary>The player cannot be found or started; the message says what to install or set.</summary>
public sealed class PlayerException(string message) : Exception(message);

/// <summary>One running player. Audio written here is heard as it arrives (or, for afplay, once complete).</summary>
public sealed class Player : IAsyncDisposable
{
    private readonly Process? process;
    private readonly Stream sink;
    private readonly string? wavPath;
    private readonly PlayerCommand command;
    private readonly int rate;
    private readonly int channels;
    private long bytes;

    private Player(PlayerCommand command, int rate, int channels)
    {
        this.command = command;
        this.rate = rate;
        this.channels = channels;
        if (command.ViaWavFile)
        {
            wavPath = Path.Combine(Path.GetTempPath(), $"timbre-{Guid.NewGuid():n}.wav");
            // NAudio's writer owns the file and writes its final sizes when it is disposed.
            sink = new WaveFileWriter(wavPath, new WaveFormat(rate, 16, channels));
            return;
        }

        process = Run(command.Template, rate, channels, null, redirectInput: true);
        sink = process.StandardInput.BaseStream;
    }

    public static Player Start(PlayerCommand command, int rate, int channels) => new(command, rate, channels);

    /// <summary>Seconds of audio handed to the player so far.</summary>
    public double Seconds => bytes / 2.0 / rate / channels;

    public async Task WriteAsync(ReadOnlyMemory<byte> pcm, CancellationToken ct)
    {
        try
        {
            await sink.WriteAsync(pcm, ct);
            await sink.FlushAsync(ct);
            bytes += pcm.Length;
        }
        catch (IOException e)
        {
            throw new PlayerException($"The player ({command.Description}) stopped taking audio: {e.Message}");
        }
    }

    /// <summary>No more audio: waits until the player has played everything it was given.</summary>
    public async Task FinishAsync(CancellationToken ct)
    {
        await sink.DisposeAsync();
        var player = process;
        if (wavPath is not null)
        {
            player = Run(command.Template, rate, channels, wavPath, redirectInput: false);
        }

        try
        {
            await player!.WaitForExitAsync(ct);
        }
        finally
        {
            if (!ReferenceEquals(player, process))
            {
                Kill(player!);
                player!.Dispose();
            }
        }
    }

    /// <summary>Silences the player at once.</summary>
    public void Stop()
    {
        if (process is not null)
        {
            Kill(process);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await sink.DisposeAsync();
        if (process is not null)
        {
            Kill(process);
            process.Dispose();
        }

        if (wavPath is not null)
        {
            File.Delete(wavPath);
        }
    }

    private static void Kill(Process p)
    {
        try
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private static Process Run(string template, int rate, int channels, string? file, bool redirectInput)
    {
        var commandLine = template
            .Replace("{rate}", rate.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{channels}", channels.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{file}", file is null ? "" : $"'{file}'", StringComparison.Ordinal);
        // Through the shell, so a template may use quoting and redirection. The player's stdout must
        // never reach this process's stdout, which carries the MCP protocol.
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = redirectInput, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec >/dev/null; " + commandLine);
        try
        {
            return Process.Start(psi) ?? throw new PlayerException($"The player could not start: {commandLine}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new PlayerException($"The player could not start ({e.Message}): {commandLine}");
        }
    }
}
