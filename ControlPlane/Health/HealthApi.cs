using Microsoft.AspNetCore.Http.HttpResults;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Health;

/// <summary>/health (the process answers) and /ready (the default engine is loaded).</summary>
public static class HealthApi
{
    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapGet("/health", () => TypedResults.Ok(new HealthStatus("healthy", null))).WithTags("Health");
        app.MapGet("/ready", Ready).WithTags("Health");
        return app;
    }

    public static Results<Ok<HealthStatus>, ProblemHttpResult> Ready(EngineHost engines) =>
        engines.IsReady
            ? TypedResults.Ok(new HealthStatus("ready", engines.DefaultEngine))
            : Problems.Unavailable($"The {engines.DefaultEngine} engine is still loading.");
}

public sealed record HealthStatus(string Status, string? Engine);
