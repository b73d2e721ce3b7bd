namespace Timbre.McpClient;

/// <summary>Registers the settings, the connection, the cross-process playback lock and the speaker.</summary>
public static class ClientExtensions
{
    public static HostApplicationBuilder AddTimbreClient(this HostApplicationBuilder builder)
    {
        builder.Services.AddSingleton(sp => ClientSettings.From(sp.GetRequiredService<IConfiguration>()));
        builder.Services.AddSingleton(_ => new PlaybackLock(PlaybackLock.DefaultDirectory()));
        builder.Services.AddSingleton<TimbreConnection>();
        builder.Services.AddSingleton<Speaker>();
        return builder;
    }
}
