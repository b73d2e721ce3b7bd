using System.ComponentModel;
using System.Text;
using ModelContextProtocol;
using ModelContextProtocol.Server;

namespace Timbre.McpClient;

/// <summary>The tools an agent sees: speak, stop and list_voices.</summary>
[McpServerToolType]
public sealed partial class SpeechTools(Speaker speaker, TimbreConnection connection, ClientSettings settings, ILogger<SpeechTools> logger)
{
    [McpServerTool(Name = "speak")]
    [Description("Says text aloud on this computer's speaker in the user's cloned voice, streamed from their Timbre server: playback starts with the first phrase, before the rest is synthesised. Calls from several windows play one after another, never over each other. Use it for short spoken summaries, not for code.")]
    public async Task<string> Speak(
        [Description("The words to say, in plain prose (at most a few thousand characters). Markdown and code are read literally, so leave them out.")] string text,
        [Description("A voice id or name from list_voices. Omit to use the configured default voice (TIMBRE_VOICE).")] string? voice = null,
        [Description("ISO language code such as en, de or fr. Omit to use the voice's own language.")] string? language = null,
        [Description("true (default): return when playback has finished. false: return at once and keep playing in the background.")] bool wait = true,
        CancellationToken cancellationToken = default)
    {
        try
        {
            return await speaker.SpeakAsync(text, voice, language, wait, cancellationToken);
        }
        catch (ToolException e)
        {
            throw new McpException(e.Message);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Anything unforeseen still tells the agent where it happened, never a bare "an error occurred".
            LogUnexpected(logger, e);
            throw new McpException($"Speaking through Timbre at {settings.Url} failed: {e.Message}");
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "speak failed unexpectedly")]
    private static partial void LogUnexpected(ILogger logger, Exception exception);

    [McpServerTool(Name = "stop")]
    [Description("Stops the speech playing now, from this window or any other, and cancels its synthesis on the server.")]
    public string Stop() => speaker.Stop();

    [McpServerTool(Name = "list_voices")]
    [Description("Lists the voices on the Timbre server (id, name, language), marking the default used when speak is given no voice.")]
    public async Task<string> ListVoices(CancellationToken cancellationToken = default)
    {
        try
        {
            var voices = await connection.VoicesAsync(cancellationToken);
            if (voices.Count == 0)
            {
                return $"Timbre at {connection.Url} has no voices yet: enrol one with POST /v1/voices (see the README).";
            }

            var text = new StringBuilder();
            foreach (var v in voices)
            {
                var isDefault = settings.Voice is { } d && (d.Equals(v.Id, StringComparison.OrdinalIgnoreCase) || d.Equals(v.Name, StringComparison.OrdinalIgnoreCase));
                text.Append("- ").Append(v.Id).Append(" (").Append(v.Name).Append(", ").Append(v.Language ?? "language not set").Append(')')
                    .Append(isDefault ? " — default" : "").Append('\n');
            }

            return text.ToString();
        }
        catch (ToolException e)
        {
            throw new McpException(e.Message);
        }
    }
}
