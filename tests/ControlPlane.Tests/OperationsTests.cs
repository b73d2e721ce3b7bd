using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Timbre.ControlPlane.Tests;

/// <summary>/metrics, the OpenAPI document and the API reference page.</summary>
public sealed class OperationsTests : IDisposable
{
    private readonly TimbreApp app = new();

    public void Dispose() => app.Dispose();

    [Fact]
    public async Task Metrics_report_latency_real_time_factor_queue_and_outcomes_in_prometheus_text()
    {
        await app.EnrolAsync("Ada");
        using var client = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/v1/speech", new { text = "Hello there. How are you?", voice = "ada" })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsJsonAsync("/v1/speech", new { text = "Bonjour.", voice = "ada", language = "fr" })).StatusCode);

        using var response = await client.GetAsync("/metrics");
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("# TYPE timbre_time_to_first_audio_seconds histogram", text, StringComparison.Ordinal);
        Assert.Contains("timbre_time_to_first_audio_seconds_count{engine=\"classic\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("timbre_real_time_factor_count{engine=\"classic\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("timbre_time_to_first_audio_seconds_bucket{engine=\"classic\",le=\"+Inf\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("timbre_streams_total{engine=\"classic\",outcome=\"completed\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("timbre_queue_depth{engine=\"classic\"} 0", text, StringComparison.Ordinal);
        Assert.Contains("timbre_streams_in_flight{engine=\"qwen3\"} 0", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE timbre_engine_errors_total counter", text, StringComparison.Ordinal);
        // Bad input is the caller's error, not the engine's.
        Assert.DoesNotContain("timbre_engine_errors_total{", text, StringComparison.Ordinal);

        // The runtime's own work: a server that has answered requests has compiled methods, and counts its
        // collections by generation; a later scrape, after more requests, has compiled at least as many.
        static double Value(string metrics, string series) =>
            double.Parse(Assert.Single(metrics.Split('\n'), l => l.StartsWith(series + " ", StringComparison.Ordinal))[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains("# TYPE dotnet_jit_compiled_methods_total counter", text, StringComparison.Ordinal);
        Assert.True(Value(text, "dotnet_jit_compiled_methods_total") > 0);
        Assert.Equal(GC.MaxGeneration + 1, text.Split('\n').Count(l => l.StartsWith("dotnet_gc_collections_total{generation=", StringComparison.Ordinal)));
        Assert.Contains("# TYPE dotnet_gc_pause_seconds_total counter", text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/v1/speech", new { text = "Once more.", voice = "ada" })).StatusCode);
        var later = await client.GetStringAsync("/metrics");
        Assert.True(Value(later, "dotnet_jit_compiled_methods_total") >= Value(text, "dotnet_jit_compiled_methods_total"));
        Assert.True(Value(later, "dotnet_gc_collections_total{generation=\"0\"}") >= Value(text, "dotnet_gc_collections_total{generation=\"0\"}"));
        Assert.True(Value(later, "dotnet_gc_pause_seconds_total") >= Value(text, "dotnet_gc_pause_seconds_total"));
    }

    [Fact]
    public async Task The_openapi_document_describes_every_api_route_and_the_reference_page_renders_it()
    {
        using var client = app.CreateClient();
        var document = await client.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = document.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToList();
        foreach (var path in new[] { "/v1/speech", "/v1/audio/speech", "/v1/models", "/v1/audio/voices", "/v1/voices", "/v1/voices/{id}", "/metrics", "/health", "/ready",
            "/v1/datasets", "/v1/datasets/{id}", "/v1/finetune/jobs", "/v1/finetune/jobs/{id}", "/v1/finetune/jobs/{id}/resume", "/v1/finetune/jobs/{id}/events",
            "/v1/voices/{id}/versions", "/v1/voices/{id}/versions/{number}/activate" })
        {
            Assert.Contains(path, paths);
        }

        var speech = document.GetProperty("paths").GetProperty("/v1/audio/speech").GetProperty("post");
        Assert.True(speech.TryGetProperty("requestBody", out _));
        Assert.Contains("429", speech.GetProperty("responses").EnumerateObject().Select(r => r.Name));

        using var page = await client.GetAsync("/docs");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("openapi/v1.json", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
