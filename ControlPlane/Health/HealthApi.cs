using Microsoft.AspNetCore.Http.HttpResults;
using Timbre.ControlPlane.Cluster;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Health;

/// <summary>/health (the process answers) and /ready (the default engine is loaded and Timbre is not draining). No key needed.</summary>
public static class HealthApi
{
    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("").WithTags("Health").AllowAnonymous().DisableRateLimiting();
        group.MapGet("/health", () => TypedResults.Ok(new HealthStatus("healthy", null)));
        group.MapGet("/ready", Ready);
        return app;
    }

    public static Results<Ok<HealthStatus>, ProblemHttpResult> Ready(EngineHost engines, SpeechScheduler scheduler, ClusterLink cluster)
    {
        if (scheduler.Draining)
        {
            return Problems.Unavailable("Timbre is draining before it stops.");
        }

        return engines.IsReady
            // Redis is reported, not required: this node serves speech without it.
            ? TypedResults.Ok(new HealthStatus("ready", engines.DefaultEngine) { Cluster = cluster.State })
            : Problems.Unavailable($"The {engines.DefaultEngine} engine is still loading.");
    }
}

public sealed record HealthStatus(string Status, string? Engine)
{
    /// <summary>With Timbre:Cluster:Redis: "connected", or what is lost while Redis is unreachable.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Cluster { get; init; }
}
