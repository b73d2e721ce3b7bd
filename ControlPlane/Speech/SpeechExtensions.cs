using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Cluster;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Speech;

/// <summary>Registers and maps everything that speaks: the scheduler, the REST endpoints and the hub.</summary>
public static class SpeechExtensions
{
    public static WebApplicationBuilder AddSpeech(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<SpeechScheduler>();
        builder.Services.AddSingleton<Synthesizer>();
        builder.Services.AddSingleton<AudioEncoder>();
        builder.Services.AddSingleton<ClusterLink>();
        builder.Services.AddSingleton<SpeechRequests>();
        builder.Services.AddSingleton<NodeSamples>();
        builder.Services.AddHostedService<NodeSamplesPruner>();
        builder.Services.AddHostedService(s => s.GetRequiredService<SpeechRequests>());
        builder.Services.AddSingleton<IHostLifetime, DrainOnSignal>();
        // The drain has already waited for streams; what is left after it gets a short grace.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));

        var signalR = builder.Services.AddSignalR().AddMessagePackProtocol();
        if (builder.Configuration["Timbre:Cluster:Redis"] is { Length: > 0 } redis)
        {
            // Hub messages reach clients on every node; a hub stream stays on the node that runs it.
            signalR.AddStackExchangeRedis(o =>
            {
                o.Configuration = ClusterLink.OptionsFor(redis);
                o.Configuration.ChannelPrefix = StackExchange.Redis.RedisChannel.Literal("timbre:signalr");
            });
        }

        // SignalR logs every exception that ends a hub stream as an error with its stack trace, a refusal
        // sent as HubException (bad voice, timeout, busy) included: any client could fill the error log.
        // SpeechHub logs refusals itself at Information and its real faults at Error instead.
        builder.Logging.AddFilter("Microsoft.AspNetCore.SignalR.Internal.DefaultHubDispatcher", LogLevel.Critical);
        builder.Services.AddOptions<HubOptions>().Configure<IOptions<TimbreOptions>>((hub, timbre) =>
        {
            // A request is at most MaxTextLength characters (up to 4 bytes each in UTF-8) plus a few small fields.
            hub.MaximumReceiveMessageSize = Math.Max(64 * 1024, (timbre.Value.Limits.MaxTextLength * 4L) + 4096);
            // Each streaming call holds one engine slot; the scheduler, not the hub, decides how many run.
            hub.MaximumParallelInvocationsPerClient = 1;
            hub.EnableDetailedErrors = false;
            hub.KeepAliveInterval = TimeSpan.FromSeconds(10);
            hub.ClientTimeoutInterval = TimeSpan.FromSeconds(30);
        });
        return builder;
    }

    public static WebApplication MapSpeech(this WebApplication app)
    {
        app.MapNativeSpeech();
        app.MapOpenAi();
        app.MapNodeApi();
        app.MapHub<SpeechHub>("/hubs/speech", o =>
        {
            // The server sends audio; it receives only small requests.
            o.ApplicationMaxBufferSize = 64 * 1024;
        });
        return app;
    }
}
