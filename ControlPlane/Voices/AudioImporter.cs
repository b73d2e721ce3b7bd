using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;

namespace Timbre.ControlPlane.Voices;

/// <summary>Checks an uploaded recording and turns it into the library's normalised 24 kHz mono WAV.</summary>
public sealed partial class AudioImporter(ILogger<AudioImporter> logger)
{
    public const int SampleRate = 24000;

    private static readonly Dictionary<string, string[]> Containers = new(StringComparer.OrdinalIgnoreCase)
    {
        // ffprobe's format_name for each accepted upload type.
        [".wav"] = ["wav"],
        [".mp3"] = ["mp3"],
        [".flac"] = ["flac"],
        [".ogg"] = ["ogg"],
        [".m4a"] = ["mov", "mp4", "m4a"],
        // What browsers record (MediaRecorder: Opus in WebM), as the dashboard uploads it.
        [".webm"] = ["matroska", "webm"],
    };

    public static IReadOnlyCollection<string> Extensions => Containers.Keys;

    /// <summary>What an uploader can do about a file that cannot be read: the end of every such message.</summary>
    private static string ExportAgain => $"export the recording again, or upload it as one of {string.Join(", ", Containers.Keys)}";

    /// <summary>
    /// Refuses what is not a readable recording of an accepted type (by its extension, its header and
    /// what ffprobe finds), or declares more than <paramref name="maxSeconds"/>.
    /// </summary>
    /// <exception cref="InvalidAudioException">with a message that tells the uploader what is wrong.</exception>
    public async Task CheckAsync(string source, string extension, string fileName, double maxSeconds, CancellationToken ct)
    {
        if (!Containers.TryGetValue(extension, out var formats))
        {
            throw new InvalidAudioException($"{fileName}: unsupported file type '{extension}'; upload {string.Join(", ", Containers.Keys)}.");
        }

        if (extension.Equals(".wav", StringComparison.OrdinalIgnoreCase))
        {
            await CheckWavHeaderAsync(source, fileName, ct);
        }

        var probe = await RunAsync("ffprobe", ["-v", "error", "-show_entries", "format=format_name,duration", "-of", "default=nw=1", source], ct);
        var format = Field(probe.Output, "format_name");
        if (probe.ExitCode != 0 || format is null || !format.Split(',').Intersect(formats).Any())
        {
            throw new InvalidAudioException($"{fileName}: not a readable {extension.TrimStart('.').ToUpperInvariant()} recording; {ExportAgain}.");
        }

        if (double.TryParse(Field(probe.Output, "duration"), CultureInfo.InvariantCulture, out var declared) && declared > maxSeconds + 0.5)
        {
            throw new InvalidAudioException($"{fileName}: {declared:0.#} s long; a file may be at most {maxSeconds:0} s. Trim it or split it into several files.");
        }
    }

    /// <summary>Checks <paramref name="source"/> and decodes it into <paramref name="destination"/>; returns its duration.</summary>
    /// <exception cref="InvalidAudioException">with a message that tells the uploader what is wrong.</exception>
    public async Task<double> ImportAsync(string source, string extension, string fileName, string destination, double maxSeconds, CancellationToken ct)
    {
        await CheckAsync(source, extension, fileName, maxSeconds, ct);

        // Mono, 24 kHz, loudness-normalised; -xerror makes a corrupt stream an error, not silence.
        var decode = await RunAsync("ffmpeg",
        [
            "-nostdin", "-v", "error", "-xerror", "-i", source, "-vn", "-ac", "1",
            "-af", "loudnorm=I=-20:TP=-2:LRA=11", "-ar", SampleRate.ToString(CultureInfo.InvariantCulture),
            // No metadata and bit-exact flags: a canonical 44-byte header, so the stored copy is
            // plain PCM WAV and the duration below is exact.
            "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
            "-c:a", "pcm_s16le", "-f", "wav", "-y", destination,
        ], ct);
        if (decode.ExitCode != 0 || !File.Exists(destination))
        {
            LogDecodeFailed(fileName, decode.Error);
            throw new InvalidAudioException($"{fileName}: the audio could not be decoded; it may be damaged: {ExportAgain}.");
        }

        var seconds = (new FileInfo(destination).Length - 44) / 2.0 / SampleRate;
        if (seconds > maxSeconds + 0.5)
        {
            throw new InvalidAudioException($"{fileName}: {seconds:0.#} s long; a sample may be at most {maxSeconds:0} s. Trim it or split it into several files.");
        }

        if (seconds < 1.0)
        {
            throw new InvalidAudioException($"{fileName}: only {seconds:0.##} s of audio; record at least 3 seconds of speech.");
        }

        return seconds;
    }

    /// <summary>
    /// The same recording decoded with no level change (32-bit float, mono, 24 kHz): the enrolment
    /// measures clipping here, where a clipped peak is still a flat run at the recording's ceiling.
    /// </summary>
    public async Task DecodeUnnormalisedAsync(string source, string destination, CancellationToken ct)
    {
        var decode = await RunAsync("ffmpeg",
        [
            "-nostdin", "-v", "error", "-i", source, "-vn", "-ac", "1", "-ar", SampleRate.ToString(CultureInfo.InvariantCulture),
            "-map_metadata", "-1", "-c:a", "pcm_f32le", "-f", "wav", "-y", destination,
        ], ct);
        if (decode.ExitCode != 0)
        {
            throw new InvalidAudioException($"{Path.GetFileName(source)}: the audio could not be decoded; it may be damaged: {ExportAgain}.");
        }
    }

    /// <summary>Refuses RIFF files whose header disagrees with their size (truncated, or claiming gigabytes).</summary>
    private static async Task CheckWavHeaderAsync(string path, string fileName, CancellationToken ct)
    {
        var length = new FileInfo(path).Length;
        var header = new byte[12];
        await using var stream = File.OpenRead(path);
        if (await stream.ReadAtLeastAsync(header, 12, throwOnEndOfStream: false, ct) < 12
            || !header.AsSpan(0, 4).SequenceEqual("RIFF"u8) || !header.AsSpan(8, 4).SequenceEqual("WAVE"u8))
        {
            throw new InvalidAudioException($"{fileName}: not a WAV file (no RIFF/WAVE header); {ExportAgain}.");
        }

        // A streamed WAV (Timbre's own, and most servers') cannot know its length when it starts and says
        // 0xFFFFFFFF: its audio runs to the end of the file, which is how ffmpeg reads it too.
        var riffSize = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
        if (riffSize != Speech.Pcm.UnknownLength && riffSize + 8L > length + 1)
        {
            throw new InvalidAudioException(
                $"{fileName}: the WAV header claims {riffSize + 8L:N0} bytes but the file has {length:N0}; the file is truncated or damaged: {ExportAgain}.");
        }

        // Walk the chunks to the data chunk and check its declared size too.
        var chunk = new byte[8];
        var position = 12L;
        while (position + 8 <= length)
        {
            stream.Position = position;
            await stream.ReadExactlyAsync(chunk, ct);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(chunk.AsSpan(4));
            if (chunk.AsSpan(0, 4).SequenceEqual("data"u8))
            {
                if (size != Speech.Pcm.UnknownLength && position + 8 + size > length)
                {
                    throw new InvalidAudioException(
                        $"{fileName}: the WAV data chunk claims {size:N0} bytes but only {length - position - 8:N0} follow; the file is truncated: {ExportAgain}.");
                }

                return;
            }

            position += 8 + size + (size & 1);
        }

        throw new InvalidAudioException($"{fileName}: the WAV file has no audio data chunk; {ExportAgain}.");
    }

    private static string? Field(string output, string key) =>
        output.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(key + "=", StringComparison.Ordinal))?[(key.Length + 1)..];

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(string program, IEnumerable<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException($"{program} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{program} is not installed: install Debian's ffmpeg (ops/run does this).", e);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync(ct);
            var error = process.StandardError.ReadToEndAsync(ct);
            try
            {
                await process.WaitForExitAsync(ct);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw;
            }

            return (process.ExitCode, await output, await error);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Upload {FileName} failed to decode: {Error}")]
    private partial void LogDecodeFailed(string fileName, string error);
}

/// <summary>An upload that is not acceptable audio; the message is for the uploader.</summary>
public sealed class InvalidAudioException(string message) : Exception(message);
