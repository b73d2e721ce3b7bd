using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using NAudio.Wave;

namespace Timbre.ControlPlane.Speech;

/// <summary>Turns a stream of 16-bit mono PCM chunks into one of the response formats, as the audio arrives.</summary>
/// <remarks>
/// WAV and raw PCM are written here. MP3, Opus, FLAC and AAC go through an ffmpeg process used as a
/// pipe: PCM is written to its stdin while encoded bytes are read from its stdout, so the first
/// encoded frames leave while the engine is still speaking.
/// </remarks>
public sealed partial class AudioEncoder(ILogger<AudioEncoder> logger)
{
    public static readonly IReadOnlyList<string> Formats = ["wav", "pcm", "mp3", "opus", "flac", "aac"];

    public static string ContentType(string format) => format switch
    {
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        "mp3" => "audio/mpeg",
        "opus" => "audio/ogg",
        "flac" => "audio/flac",
        "aac" => "audio/aac",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unknown format"),
    };

    /// <summary>Encoded bytes in order. A WAV header carries an unknown length, as streamed WAV must.</summary>
    public async IAsyncEnumerable<ReadOnlyMemory<byte>> EncodeAsync(
        IAsyncEnumerable<byte[]> pcm, int sampleRate, string format, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (format is "wav" or "pcm")
        {
            if (format == "wav")
            {
                yield return Pcm.StreamingWavHeader(sampleRate, 1);
            }

            await foreach (var chunk in pcm.WithCancellation(cancellationToken))
            {
                yield return chunk;
            }

            yield break;
        }

        await foreach (var bytes in FfmpegAsync(pcm, sampleRate, format, cancellationToken))
        {
            yield return bytes;
        }
    }

    /// <summary>The whole clip in one buffer; a WAV gets its exact length.</summary>
    public async Task<byte[]> EncodeWholeAsync(IAsyncEnumerable<byte[]> pcm, int sampleRate, string format, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        if (format == "wav")
        {
            // NAudio's writer leaves the buffer open and writes the sizes into it when disposed.
            using (var wav = new WaveFileWriter(buffer, new WaveFormat(sampleRate, 16, 1)))
            {
                await foreach (var chunk in pcm.WithCancellation(cancellationToken))
                {
                    wav.Write(chunk);
                }
            }

            return buffer.ToArray();
        }

        await foreach (var bytes in EncodeAsync(pcm, sampleRate, format, cancellationToken))
        {
            buffer.Write(bytes.Span);
        }

        return buffer.ToArray();
    }

    private static string[] CodecArguments(string format) => format switch
    {
        "mp3" => ["-c:a", "libmp3lame", "-b:a", "96k", "-f", "mp3"],
        // Ogg pages every 100 ms instead of every second, so a player hears Opus as it streams.
        "opus" => ["-c:a", "libopus", "-b:a", "48k", "-page_duration", "100000", "-f", "ogg"],
        "flac" => ["-c:a", "flac", "-f", "flac"],
        "aac" => ["-c:a", "aac", "-b:a", "96k", "-f", "adts"],
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "no ffmpeg codec for this format"),
    };

    private async IAsyncEnumerable<ReadOnlyMemory<byte>> FfmpegAsync(
        IAsyncEnumerable<byte[]> pcm, int sampleRate, string format, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo("ffmpeg")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in (string[])["-hide_banner", "-nostdin", "-loglevel", "error", "-f", "s16le", "-ar", sampleRate.ToString(CultureInfo.InvariantCulture), "-ac", "1", "-i", "pipe:0"])
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var a in CodecArguments(format).Concat(["-flush_packets", "1", "pipe:1"]))
        {
            psi.ArgumentList.Add(a);
        }

        using var ffmpeg = Process.Start(psi) ?? throw new InvalidOperationException("ffmpeg did not start; install it with ops/install-deps.");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var errors = new StringBuilder();
        var stderr = DrainAsync(ffmpeg.StandardError, errors);
        var feed = FeedAsync(pcm, ffmpeg.StandardInput.BaseStream, stop.Token);
        var output = ffmpeg.StandardOutput.BaseStream;
        // 8 KB is about 0.7 s of 96 kbit/s MP3: pieces leave as soon as ffmpeg flushes them.
        var buffer = new byte[8192];
        var finished = false;
        try
        {
            while (true)
            {
                var n = await output.ReadAsync(buffer, stop.Token);
                if (n == 0)
                {
                    break;
                }

                yield return buffer.AsMemory(0, n).ToArray();
            }

            // Surfaces the engine's failure, if that is why stdin closed early.
            await feed;
            await ffmpeg.WaitForExitAsync(cancellationToken);
            await stderr;
            if (ffmpeg.ExitCode != 0)
            {
                throw new InvalidOperationException($"ffmpeg failed to encode {format}: {errors}");
            }

            finished = true;
        }
        finally
        {
            if (!finished)
            {
                await stop.CancelAsync();
                if (!ffmpeg.HasExited)
                {
                    ffmpeg.Kill();
                }

                try
                {
                    await feed;
                }
                catch (Exception e) when (e is OperationCanceledException or IOException)
                {
                    LogEncoderStopped(logger, format);
                }
            }
        }
    }

    private static async Task FeedAsync(IAsyncEnumerable<byte[]> pcm, Stream stdin, CancellationToken ct)
    {
        await using (stdin)
        {
            await foreach (var chunk in pcm.WithCancellation(ct))
            {
                await stdin.WriteAsync(chunk, ct);
                await stdin.FlushAsync(ct);
            }
        }
    }

    private static async Task DrainAsync(StreamReader stderr, StringBuilder into)
    {
        var text = await stderr.ReadToEndAsync();
        into.Append(text.Length > 2000 ? text[..2000] : text);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "The {Format} encoder was stopped before the end of the audio")]
    private static partial void LogEncoderStopped(ILogger logger, string format);
}
