namespace Timbre.ControlPlane.Engines;

/// <summary>Registers the engine host and starts it with the application.</summary>
public static class EngineExtensions
{
    public static WebApplicationBuilder AddEngines(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<EngineHost>();
        builder.Services.AddHostedService<EngineStartup>();
        return builder;
    }

    private sealed class EngineStartup(EngineHost engines) : IHostedService
    {
        // Started before Kestrel listens, so the first request finds the default engine loaded.
        public Task StartAsync(CancellationToken cancellationToken) => engines.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
