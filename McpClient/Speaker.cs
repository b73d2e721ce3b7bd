using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Timbre.ControlPlane.Speech;

namespace Timbre.McpClient;

/// <summary>Streams speech from Timbre into the local player, one voice at a time across processes.</summary>
public sealed partial class Speaker(TimbreConnection connection, PlaybackLock playbackLock, ClientSettings settings, ILogger<Speaker> logger) : IAsyncDisposable
{
    private readonly Lock gate = new();
    private readonly List<Task> background = [];
    private CancellationTokenSource? playing;

    /// <summary>Speaks <paramref name="text"/>; with <paramref name="wait"/> returns when playback ends, else once it is queued.</summary>
    public async Task<string> SpeakAsync(string text, string? voice, string? language, bool wait, CancellationToken ct)
    {
        if (settings.Problem is { } problem)
        {
            throw new ToolException(problem);
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            throw new ToolException("text is empty: give the words to speak.");
        }

        voice ??= settings.Voice ?? throw new ToolException("No voice was given and TIMBRE_VOICE is not set: pass voice, or set TIMBRE_VOICE in the MCP server's env; list_voices shows the choices.");
        PlayerCommand player;
        try
        {
            player = PlayerCommand.Choose(settings.Player);
        }
        catch (PlayerException e)
        {
            throw new ToolException(e.Message);
        }

        if (!wait)
        {
            var task = PlayInBackgroundAsync(text, voice, language, player);
            lock (background)
            {
                background.RemoveAll(t => t.IsCompleted);
                background.Add(task);
            }

            return $"Speaking {Words(text)} words in voice '{voice}' in the background (after any speech already playing); stop() ends it.";
        }

        return (await PlayAsync(text, voice, language, player, ct)).Describe();
    }

    /// <summary>Stops this process's playback, or asks the process that is playing to stop.</summary>
    public string Stop()
    {
        CancellationTokenSource? mine;
        lock (gate)
        {
            mine = playing;
        }

        if (mine is not null)
        {
            try
            {
                mine.Cancel();
                return "Stopped the speech that was playing.";
            }
            catch (ObjectDisposedException)
            {
                // It ended a moment ago.
            }
        }

        return playbackLock.RequestStop() ? "Stopped the speech that another window was playing." : "Nothing was playing.";
    }

    private async Task PlayInBackgroundAsync(string text, string voice, string? language, PlayerCommand player)
    {
        try
        {
            var outcome = (await PlayAsync(text, voice, language, player, CancellationToken.None)).Describe();
            LogBackgroundDone(logger, outcome);
        }
        catch (ToolException e)
        {
            // Nobody awaits a background playback: its failure goes to the log (stderr) for the user.
            LogBackgroundFailed(logger, e.Message);
        }
    }

    private async Task<Outcome> PlayAsync(string text, string voice, string? language, PlayerCommand command, CancellationToken ct)
    {
        using var turn = await playbackLock.AcquireAsync(ct);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        lock (gate)
        {
            playing = stop;
        }

        // A stop() from another process arrives as a file; it is looked for while this one plays.
        using var watch = new Timer(_ =>
        {
            if (playbackLock.TakeStopRequest())
            {
                stop.Cancel();
            }
        }, null, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(100));
        var clock = Stopwatch.StartNew();
        Player? player = null;
        double? firstAudio = null;
        string? broken = null;
        var stopped = false;
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                var hub = await connection.OpenAsync(stop.Token);
                var request = new SpeechRequest { Text = text, Voice = voice, Language = language, RequestId = Guid.NewGuid().ToString("n") };
                try
                {
                    var complete = false;
                    await foreach (var chunk in hub.StreamAsync<AudioChunk>("StreamSpeech", request, stop.Token))
                    {
                        if (chunk.IsFinal)
                        {
                            complete = true;
                            break;
                        }

                        if (player is null)
                        {
                            player = Player.Start(command, chunk.SampleRate, chunk.Channels);
                            firstAudio = clock.Elapsed.TotalMilliseconds;
                            LogPlaybackStarted(logger, request.RequestId, firstAudio.Value);
                        }

                        await player.WriteAsync(chunk.Pcm, stop.Token);
                    }

                    // A stream closed without its final chunk was cut off (the server stopped or restarted).
                    if (!complete && player is not null)
                    {
                        broken = $"Timbre at {connection.Url} closed the stream before the end";
                    }
                    else if (!complete)
                    {
                        throw new IOException($"Timbre at {connection.Url} closed the stream before any audio");
                    }

                    break;
                }
                catch (HubException e) when (player is null)
                {
                    throw new ToolException($"Timbre refused: {e.Message}");
                }
                catch (HubException e)
                {
                    broken = e.Message;
                    break;
                }
                catch (Exception e) when (e is not OperationCanceledException and not PlayerException && player is null && attempt == 1)
                {
                    // The connection died before any audio (a server restart between calls): once more on a fresh one.
                    LogRetrying(logger, e.Message);
                }
                catch (Exception e) when (e is not OperationCanceledException and not PlayerException)
                {
                    broken = $"the connection to {connection.Url} broke ({e.Message})";
                    break;
                }
            }

            if (player is null)
            {
                throw new ToolException(broken ?? "Timbre sent no audio for this text.");
            }

            // Whatever arrived is played to the end, even after a break: nothing is left hanging.
            await player.FinishAsync(stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            stopped = true;
            player?.Stop();
        }
        catch (PlayerException e)
        {
            throw new ToolException(e.Message);
        }
        finally
        {
            lock (gate)
            {
                playing = null;
            }

            if (player is not null)
            {
                await player.DisposeAsync();
            }
        }

        return new Outcome(text, voice, player?.Seconds ?? 0, firstAudio, command.Description, stopped, broken);
    }

    private static int Words(string text) => text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;

    public async ValueTask DisposeAsync()
    {
        Stop();
        Task[] running;
        lock (background)
        {
            running = [.. background];
        }

        await Task.WhenAll(running);
    }

    private sealed record Outcome(string Text, string Voice, double Seconds, double? FirstAudioMs, string Player, bool Stopped, string? Broken)
    {
        public string Describe()
        {
            var said = Text.Length > 80 ? Text[..77] + "…" : Text;
            var first = FirstAudioMs is { } ms ? string.Create(CultureInfo.InvariantCulture, $"first audio after {ms:0} ms") : "no audio";
            var what = string.Create(CultureInfo.InvariantCulture, $"\"{said}\" ({Words(Text)} words, {Seconds:0.0} s of audio) in voice '{Voice}'; {first}; played with {Player}.");
            return Stopped ? $"Stopped while speaking {what}"
                : Broken is not null ? $"The stream broke part-way ({Broken}); played what had arrived of {what}"
                : $"Spoke {what}";
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Playback of {RequestId} started after {Milliseconds:0} ms")]
    private static partial void LogPlaybackStarted(ILogger logger, string? requestId, double milliseconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The connection failed before any audio ({Reason}); retrying on a new connection")]
    private static partial void LogRetrying(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Background speech done: {Outcome}")]
    private static partial void LogBackgroundDone(ILogger logger, string outcome);

    [LoggerMessage(Level = LogLevel.Error, Message = "Background speech failed: {Reason}")]
    private static partial void LogBackgroundFailed(ILogger logger, string reason);
}
