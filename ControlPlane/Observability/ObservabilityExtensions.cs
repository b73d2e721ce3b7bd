using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace Timbre.ControlPlane.Observability;

/// <summary>/metrics in Prometheus text, the OpenAPI document and a browsable API reference.</summary>
public static class ObservabilityExtensions
{
    public static WebApplicationBuilder AddObservability(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<TimbreMetrics>();
        builder.Services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info = new OpenApiInfo
            {
                Title = "Timbre",
                Version = "v1",
                Description = "Self-hosted voice-cloning text to speech. Send the API key as Authorization: Bearer <key> or X-API-Key. The SignalR hub /hubs/speech streams PCM chunks: StreamSpeech(request).",
            };
            return Task.CompletedTask;
        }));
        return builder;
    }

    public static WebApplication MapObservability(this WebApplication app)
    {
        app.MapGet("/metrics", (TimbreMetrics metrics) => Results.Text(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8"))
            .WithTags("Operations")
            .WithSummary("Prometheus metrics");
        app.MapOpenApi();
        // Scalar marks its script anonymous; like every other route here but /health and /ready, it needs a key.
        app.MapScalarApiReference("/docs", o => o.WithTitle("Timbre API")).Finally(endpoint =>
        {
            var anonymous = endpoint.Metadata.OfType<Microsoft.AspNetCore.Authorization.IAllowAnonymous>().ToList();
            foreach (var m in anonymous)
            {
                endpoint.Metadata.Remove(m);
            }
        });
        return app;
    }
}
