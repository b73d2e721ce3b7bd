using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Timbre.ControlPlane.Tests;

/// <summary>The auth matrix over every route the server maps, rate limits, origins and host names.</summary>
public sealed class SecurityTests : IDisposable
{
    private const string Key = "security-test-key-0123456789abcdef";
    private const string OtherKey = "second-security-key-0123456789ab";
    private readonly TimbreApp app = new();

    public SecurityTests()
    {
        app.Settings["Timbre:Auth:ApiKeys:0"] = Key;
        app.Settings["Timbre:Auth:ApiKeys:1"] = OtherKey;
        app.Settings["Timbre:Auth:AllowedOrigins:0"] = "http://studio.example:8080";
        // The matrix sends hundreds of wrong keys from one address to see each route's 401; the limit on
        // wrong keys has its own test (HardeningTests) and would answer most of these with 429.
        app.Settings["Timbre:Auth:FailedAttemptsPerMinute"] = "0";
    }

    public void Dispose() => app.Dispose();

    /// <summary>Every route and method the running server maps, with its parameters filled in.</summary>
    private List<(string Method, string Path)> Routes()
    {
        _ = app.BaseAddress;
        var routes = new List<(string, string)>();
        foreach (var endpoint in app.Get<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            var path = "/" + string.Join("/", endpoint.RoutePattern.PathSegments.Select(s => string.Concat(s.Parts.Select(p => p switch
            {
                Microsoft.AspNetCore.Routing.Patterns.RoutePatternLiteralPart l => l.Content,
                Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart { Name: "documentName" } => "v1",
                Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart => "x",
                _ => "",
            }))));
            var methods = endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"];
            routes.AddRange(methods.Select(m => (m, path)));
        }

        return routes.Distinct().ToList();
    }

    [Fact]
    public async Task Every_route_but_health_and_ready_needs_a_valid_key()
    {
        var routes = Routes();
        Assert.Contains(("POST", "/v1/audio/speech"), routes);
        Assert.Contains(routes, r => r.Path == "/hubs/speech/negotiate");
        Assert.Contains(("GET", "/metrics"), routes);
        using var anonymous = app.CreateClient();
        using var wrong = app.CreateClient("wrong-key-but-long-enough-0123456789");
        using var xApiKeyWrong = app.CreateClient();
        xApiKeyWrong.DefaultRequestHeaders.Add("X-API-Key", "wrong-key-but-long-enough-0123456789");
        foreach (var (method, path) in routes)
        {
            foreach (var client in new[] { anonymous, wrong, xApiKeyWrong })
            {
                using var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
                if (path is "/health" or "/ready")
                {
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                    continue;
                }

                Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path} answered {response.StatusCode} without a valid key");
                Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
                var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
                Assert.Contains("key", problem.GetProperty("detail").GetString()!, StringComparison.OrdinalIgnoreCase);
            }
        }
    }

    [Fact]
    public async Task Both_keys_work_by_bearer_and_by_X_API_Key()
    {
        using var bearer = app.CreateClient(OtherKey);
        Assert.Equal(HttpStatusCode.OK, (await bearer.GetAsync("/v1/voices")).StatusCode);
        using var header = app.CreateClient();
        header.DefaultRequestHeaders.Add("X-API-Key", Key);
        Assert.Equal(HttpStatusCode.OK, (await header.GetAsync("/metrics")).StatusCode);
        // The query string is for the hubs only: a key there on a REST route would end up in proxies' logs.
        using var anonymous = app.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/voices?access_token=" + Key)).StatusCode);
    }

    [Fact]
    public async Task The_rate_limit_is_per_key_and_answers_429_with_Retry_After()
    {
        app.Settings["Timbre:Limits:RequestsPerMinute"] = "3";
        using var first = app.CreateClient(Key);
        using var second = app.CreateClient(OtherKey);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await first.GetAsync("/v1/voices")).StatusCode);
        }

        using var limited = await first.GetAsync("/v1/voices");
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.True(limited.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        Assert.Contains("RequestsPerMinute", (await limited.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString()!, StringComparison.Ordinal);
        // Another key has its own allowance, and health checks are never limited.
        Assert.Equal(HttpStatusCode.OK, (await second.GetAsync("/v1/voices")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await first.GetAsync("/ready")).StatusCode);
        Assert.Contains("timbre_rejections_total{reason=\"rate_limited\"} 1", await second.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_page_on_a_foreign_origin_cannot_upload_even_with_a_simple_request()
    {
        var before = app.Snapshot();
        using var client = app.CreateClient(Key);
        using var form = new MultipartFormDataContent { { new StringContent("evil"), "name" }, { new ByteArrayContent(Audio.Espeak("Hello there.")), "files", "a.wav" } };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/voices") { Content = form };
        request.Headers.Add("Origin", "http://evil.example");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("AllowedOrigins", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString()!, StringComparison.Ordinal);
        Assert.Equal(before, app.Snapshot());
    }

    [Fact]
    public async Task Cors_allows_the_configured_dashboard_origin_and_no_other()
    {
        using var client = app.CreateClient();
        async Task<HttpResponseMessage> Preflight(string origin)
        {
            var request = new HttpRequestMessage(HttpMethod.Options, "/v1/speech");
            request.Headers.Add("Origin", origin);
            request.Headers.Add("Access-Control-Request-Method", "POST");
            request.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
            return await client.SendAsync(request);
        }

        using var allowed = await Preflight("http://studio.example:8080");
        Assert.Equal("http://studio.example:8080", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        using var refused = await Preflight("http://evil.example");
        Assert.False(refused.Headers.Contains("Access-Control-Allow-Origin"));

        // Timbre's own origin (the dashboard it serves) is always trusted.
        using var own = app.CreateClient(Key);
        using var sameOrigin = new HttpRequestMessage(HttpMethod.Get, "/v1/voices");
        sameOrigin.Headers.Add("Origin", app.BaseAddress.GetLeftPart(UriPartial.Authority));
        Assert.Equal(HttpStatusCode.OK, (await own.SendAsync(sameOrigin)).StatusCode);
    }

    [Fact]
    public async Task Host_names_other_than_loopback_are_refused_by_default()
    {
        using var client = app.CreateClient(Key);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
        request.Headers.Host = "rebound.example";
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("AllowedHosts", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString()!, StringComparison.Ordinal);
    }

    [Fact]
    public void Listening_on_the_network_without_keys_refuses_to_start_and_says_what_to_set()
    {
        using var open = new TimbreApp();
        open.Settings["urls"] = "http://0.0.0.0:0";
        var error = Assert.Throws<OptionsValidationException>(() => open.CreateClient());
        Assert.Contains("Timbre:Auth:ApiKeys", error.Message, StringComparison.Ordinal);
        Assert.Contains("AllowInsecure", error.Message, StringComparison.Ordinal);
        Assert.Contains("AllowedHosts", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("short")]
    [InlineData("has a space in it 0123456789")]
    public void Weak_keys_refuse_to_start(string key)
    {
        using var weak = new TimbreApp();
        weak.Settings["Timbre:Auth:ApiKeys:0"] = key;
        var error = Assert.Throws<OptionsValidationException>(() => weak.CreateClient());
        Assert.Contains("openssl rand", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_keys_only_loopback_callers_are_served()
    {
        using var local = new TimbreApp();
        using var client = local.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/voices")).StatusCode);
    }
}
