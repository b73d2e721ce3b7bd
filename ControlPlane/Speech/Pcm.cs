using System.Buffers.Binary;

namespace Timbre.ControlPlane.Speech;

/// <summary>16-bit PCM and the WAV container around it.</summary>
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

    /// <summary>A 44-byte RIFF/WAVE header for 16-bit PCM.</summary>
    public static byte[] WavHeader(int sampleRate, int channels, uint dataBytes)
    {
        var h = new byte[44];
        var s = h.AsSpan();
        "RIFF"u8.CopyTo(s);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], dataBytes == UnknownLength ? UnknownLength : dataBytes + 36);
        "WAVEfmt "u8.CopyTo(s[8..]);
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], 16);
        BinaryPrimitives.WriteUInt16LittleEndian(s[20..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(s[22..], (ushort)channels);
        BinaryPrimitives.WriteUInt32LittleEndian(s[24..], (uint)sampleRate);
        BinaryPrimitives.WriteUInt32LittleEndian(s[28..], (uint)(sampleRate * channels * 2));
        BinaryPrimitives.WriteUInt16LittleEndian(s[32..], (ushort)(channels * 2));
        BinaryPrimitives.WriteUInt16LittleEndian(s[34..], 16);
        "data"u8.CopyTo(s[36..]);
        BinaryPrimitives.WriteUInt32LittleEndian(s[40..], dataBytes);
        return h;
    }
}
