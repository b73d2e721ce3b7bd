extern alias mcp;

using System.Buffers.Binary;
using mcp::Timbre.McpClient;

namespace Timbre.McpClient.Tests;

/// <summary>The players themselves, with real processes standing in for the speaker.</summary>
public sealed class PlayerTests : IDisposable
{
    private readonly DirectoryInfo work = Directory.CreateTempSubdirectory("timbre-player-");

    public void Dispose() => work.Delete(recursive: true);

    [Fact]
    public async Task A_player_that_needs_a_file_gets_a_complete_wav_of_everything_written()
    {
        // As afplay is used on a Mac without a streaming player: the file exists only once the audio is complete.
        var copy = Path.Combine(work.FullName, "played.wav");
        var named = Path.Combine(work.FullName, "path");
        var command = new PlayerCommand($"cp {{file}} '{copy}' && echo {{file}} > '{named}'", ViaWavFile: true, "a file player");
        var pcm = Enumerable.Range(0, 2401).SelectMany(i => BitConverter.GetBytes((short)(i * 13))).ToArray();

        await using (var player = Player.Start(command, 24000, 1))
        {
            await player.WriteAsync(pcm.AsMemory(0, 1000), CancellationToken.None);
            await player.WriteAsync(pcm.AsMemory(1000), CancellationToken.None);
            Assert.False(File.Exists(copy));
            await player.FinishAsync(CancellationToken.None);
        }

        var wav = await File.ReadAllBytesAsync(copy);
        Assert.Equal("RIFF"u8.ToArray(), wav[..4]);
        Assert.Equal((uint)(wav.Length - 8), BinaryPrimitives.ReadUInt32LittleEndian(wav.AsSpan(4)));
        Assert.Equal("WAVEfmt "u8.ToArray(), wav[8..16]);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(wav.AsSpan(20)));
        Assert.Equal(24000u, BinaryPrimitives.ReadUInt32LittleEndian(wav.AsSpan(24)));
        Assert.Equal(16, BinaryPrimitives.ReadUInt16LittleEndian(wav.AsSpan(34)));
        Assert.Equal("data"u8.ToArray(), wav[36..40]);
        Assert.Equal((uint)pcm.Length, BinaryPrimitives.ReadUInt32LittleEndian(wav.AsSpan(40)));
        Assert.Equal(pcm, wav[44..]);
        var played = (await File.ReadAllTextAsync(named)).Trim();
        Assert.StartsWith(Path.GetTempPath(), played, StringComparison.Ordinal);
        Assert.False(File.Exists(played), "the player's file outlives the player");
    }
}
