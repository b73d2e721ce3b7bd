using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Engines;

/// <summary>Registers the engine host, starts it with the application and unloads idle GPU engines.</summary>
public static partial class EngineExtensions
{
    public static WebApplicationBuilder AddEngines(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<EngineHost>();
        builder.Services.AddHostedService<EngineStartup>();
        builder.Services.AddHostedService<IdleUnloader>();
        return builder;
    }

    public static IEndpointRouteBuilder MapEngines(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/engines", (EngineHost engines) => TypedResults.Ok(engines.List()))
            .WithTags("Engines")
            .WithSummary("The engines, whether each can run here and why not")
            .WithDescription("Each engine with its availability on this machine (package importable, CUDA present, licence accepted), the reason when it is unavailable, its languages and capabilities (clone, design, instructions, speakers, fine-tuned voices), and whether it is loaded now. Choose one per request with `engine` (or `model` on /v1/audio/speech).");
        return app;
    }

    private sealed class EngineStartup(EngineHost engines) : IHostedService
    {
        // Started before Kestrel listens, so the first request finds the default engine loaded.
        public Task StartAsync(CancellationToken cancellationToken) => engines.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed partial class IdleUnloader(EngineHost engines, IOptions<TimbreOptions> options, ILogger<IdleUnloader> logger) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            var idle = TimeSpan.FromMinutes(options.Value.Engine.IdleUnloadMinutes);
            if (idle <= TimeSpan.Zero)
            {
                return;
            }

            // Checked a few times per idle period, at most every 30 s.
            var period = TimeSpan.FromTicks(Math.Clamp(idle.Ticks / 4, TimeSpan.FromMilliseconds(100).Ticks, TimeSpan.FromSeconds(30).Ticks));
            using var timer = new PeriodicTimer(period);
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    if (engines.IsReady)
                    {
                        await engines.UnloadIdleAsync(stoppingToken);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogUnloadFailed(logger, e);
                }
            }
        }

        [LoggerMessage(Level = LogLevel.Warning, Message = "Unloading an idle engine failed")]
        private static partial void LogUnloadFailed(ILogger logger, Exception exception);
    }
}
