namespace Timbre.McpClient;

/// <summary>Where Timbre is and how to play: from TIMBRE_* environment variables or --url/--api-key/--voice/--player.</summary>
public sealed record ClientSettings(Uri? Url, string? ApiKey, string? Voice, string? Player, string? Problem)
{
    public static readonly Dictionary<string, string> SwitchMappings = new(StringComparer.Ordinal)
    {
        ["--url"] = "TIMBRE_URL",
        ["--api-key"] = "TIMBRE_API_KEY",
        ["--voice"] = "TIMBRE_VOICE",
        ["--player"] = "TIMBRE_PLAYER",
    };

    /// <summary>Reads the settings; a bad one is kept as <see cref="Problem"/> so each tool call can report what to fix.</summary>
    public static ClientSettings From(IConfiguration configuration)
    {
        var raw = configuration["TIMBRE_URL"];
        var key = Blank(configuration["TIMBRE_API_KEY"]);
        var voice = Blank(configuration["TIMBRE_VOICE"]);
        var player = Blank(configuration["TIMBRE_PLAYER"]);
        if (string.IsNullOrWhiteSpace(raw))
        {
            return new(null, key, voice, player, "TIMBRE_URL is not set: set it to the Timbre server, for example http://desktop.local:5075, in the MCP server's env (~/.cursor/mcp.json).");
        }

        if (!Uri.TryCreate(raw.Trim(), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            return new(null, key, voice, player, $"TIMBRE_URL '{raw}' is not an http(s) URL: use the form http://desktop.local:5075.");
        }

        if (player is not null && !player.Contains("{rate}", StringComparison.Ordinal))
        {
            return new(url, key, voice, null, $"TIMBRE_PLAYER '{player}' has no {{rate}}: it must read 16-bit PCM from stdin at {{rate}} Hz and {{channels}} channels, for example: play -q -t raw -r {{rate}} -e signed -b 16 -c {{channels}} -");
        }

        return new(url, key, voice, player, null);
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
