using System.Buffers.Binary;
using NAudio.Wave;

namespace Timbre.ControlPlane.Speech;

/// <summary>16-bit PCM and the WAV container around it.</summary>
/// <remarks>
/// A whole clip is written by NAudio's <see cref="WaveFileWriter"/>, which finalises the sizes by
/// seeking back when it is disposed. A streamed WAV cannot seek back, so its header is the RIFF frame
/// around NAudio's own <c>fmt </c> chunk, with both sizes set to "unknown".
/// </remarks>
public static class Pcm
{
    /// <summary>Data size written when the length is not known yet (a streamed WAV); players read to the end.</summary>
    public const uint UnknownLength = 0xFFFFFFFF;

    /// <summary>Float samples in [-1, 1] to 16-bit little-endian, clipped and rounded.</summary>
    public static byte[] ToInt16(ReadOnlySpan<float> samples)
    {
        var bytes = new byte[samples.Length * 2];
        for (var i = 0; i < samples.Length; i++)
        {
            var s = Math.Clamp(samples[i], -1f, 1f);
            BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(i * 2), (short)MathF.Round(s * 32767f));
        }

        return bytes;
    }

    /// <summary>The header of a streamed 16-bit PCM WAV whose length is not known yet.</summary>
    public static byte[] StreamingWavHeader(int sampleRate, int channels)
    {
        using var buffer = new MemoryStream(44);
        using (var writer = new BinaryWriter(buffer))
        {
            writer.Write("RIFF"u8);
            writer.Write(UnknownLength);
            writer.Write("WAVEfmt "u8);
            new WaveFormat(sampleRate, 16, channels).Serialize(writer);
            writer.Write("data"u8);
            writer.Write(UnknownLength);
        }

        return buffer.ToArray();
    }

    /// <summary>A complete 16-bit PCM WAV file of the given little-endian samples.</summary>
    public static byte[] Wav(int sampleRate, int channels, ReadOnlySpan<byte> pcm)
    {
        using var buffer = new MemoryStream(pcm.Length + 44);
        using (var writer = new WaveFileWriter(buffer, new WaveFormat(sampleRate, 16, channels)))
        {
            writer.Write(pcm);
        }

        return buffer.ToArray();
    }
}
