using System.Buffers.Binary;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Tests;

/// <summary>The 16-bit conversion every chunk goes through: eight samples at a time, the same bytes as one at a time.</summary>
public sealed class PcmTests
{
    // The definition: clip to [-1, 1], scale by 32767, round half to even; NaN is silence.
    private static short Expected(float sample) =>
        float.IsNaN(sample) ? (short)0 : (short)MathF.Round(Math.Clamp(sample, -1f, 1f) * 32767f, MidpointRounding.ToEven);

    private static void AssertMatches(float[] samples)
    {
        var bytes = Pcm.ToInt16(samples);
        Assert.Equal(samples.Length * 2, bytes.Length);
        for (var i = 0; i < samples.Length; i++)
        {
            var got = BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(i * 2));
            Assert.True(Expected(samples[i]) == got, $"sample {i} ({samples[i]:R}): expected {Expected(samples[i])}, got {got}");
        }
    }

    [Fact]
    public void Edges_clip_round_half_to_even_and_silence_nan()
    {
        float[] edges =
        [
            0f, -0f, 1f, -1f, 1.0001f, -1.0001f, 7.5f, -7.5f, float.PositiveInfinity, float.NegativeInfinity, float.NaN,
            float.Epsilon, -float.Epsilon, 0.5f / 32767f, 1.5f / 32767f, 2.5f / 32767f, -0.5f / 32767f, -1.5f / 32767f,
            -2.5f / 32767f, 32766.5f / 32767f, -32766.5f / 32767f, 0.49999f / 32767f, 0.50001f / 32767f,
        ];
        // Long enough that every edge also lands in the vector loop, at every position within a vector.
        AssertMatches([.. Enumerable.Range(0, 64).SelectMany(_ => edges)]);
        foreach (var e in edges)
        {
            Assert.Equal(Expected(e), BinaryPrimitives.ReadInt16LittleEndian(Pcm.ToInt16([e])));
        }

        Assert.Equal(32767, BinaryPrimitives.ReadInt16LittleEndian(Pcm.ToInt16([3f])));
        Assert.Equal(-32767, BinaryPrimitives.ReadInt16LittleEndian(Pcm.ToInt16([-3f])));
        Assert.Equal(2, BinaryPrimitives.ReadInt16LittleEndian(Pcm.ToInt16([2.5f / 32767f])));
    }

    [Fact]
    public void Random_audio_of_every_length_up_to_three_vectors_matches()
    {
        var random = new Random(14);
        for (var length = 0; length <= 48; length++)
        {
            AssertMatches([.. Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() * 3) - 1.5))]);
        }

        AssertMatches([.. Enumerable.Range(0, 100_003).Select(_ => (float)((random.NextDouble() * 2.4) - 1.2))]);
    }
}
