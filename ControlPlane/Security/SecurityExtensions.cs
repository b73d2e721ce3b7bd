using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Cluster;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Observability;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Security;

/// <summary>API keys on every route, per-key rate limits, and browsers kept to the origins Timbre trusts.</summary>
public static class SecurityExtensions
{
    public static WebApplicationBuilder AddSecurity(this WebApplicationBuilder builder)
    {
        builder.Services.AddLogRedaction();
        builder.Services.AddSingleton<FailedKeyAttempts>();
        builder.Services.AddAuthentication(ApiKeys.SchemeName).AddScheme<AuthenticationSchemeOptions, ApiKeys>(ApiKeys.SchemeName, null);
        // Every endpoint needs a key unless it says otherwise (/health and /ready do). The node key opens
        // the node API (/v1/cluster) only: it buys unmarked audio, and is no API key.
        builder.Services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new AuthorizationPolicyBuilder(ApiKeys.SchemeName).RequireAuthenticatedUser()
                .RequireAssertion(c => !c.User.IsInRole(ApiKeys.NodeRole)).Build())
            .AddPolicy(ApiKeys.NodeRole, new AuthorizationPolicyBuilder(ApiKeys.SchemeName).RequireRole(ApiKeys.NodeRole).Build());

        builder.Services.AddSingleton(sp => new RequestLimiter(CreateLimiter(sp.GetRequiredService<IOptions<TimbreOptions>>().Value.Limits.RequestsPerMinute, sp.GetRequiredService<ClusterLink>())));

        builder.Services.AddCors();
        builder.Services.AddSingleton<ICorsPolicyProvider, TrustedOrigins>();

        // AllowedHosts is enforced by RefuseUnknownHosts below, which answers with problem details;
        // the framework's own filter (an HTML page) is left open so the two never disagree.
        builder.Services.PostConfigure<Microsoft.AspNetCore.HostFiltering.HostFilteringOptions>(o => o.AllowedHosts = ["*"]);
        return builder;
    }

    public static WebApplication UseSecurity(this WebApplication app)
    {
        var hosts = (app.Configuration["AllowedHosts"] ?? "*").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        app.Use((http, next) => RefuseUnknownHosts(http, next, hosts));
        app.UseCors();
        app.Use(RefuseForeignOrigins);
        return app;
    }

    /// <summary>API keys, the fallback policy that every route needs one, and the per-key rate limit; after UseSecurity and the dashboard's files.</summary>
    public static WebApplication UseApiKeys(this WebApplication app)
    {
        app.UseAuthentication();
        app.UseAuthorization();
        app.Use(LimitRequests);
        return app;
    }

    /// <summary>
    /// The per-key request limit on every route that does not opt out (<c>DisableRateLimiting</c>: health, the node API).
    /// </summary>
    /// <remarks>
    /// ASP.NET's rate-limiting middleware did this with the same limiter, but it always builds a partitioned
    /// limiter of its own for endpoint policies, whose heartbeat ticks every 100 ms for the life of the
    /// process; Timbre has no endpoint policies, so it asks its limiter here instead.
    /// </remarks>
    private static async Task LimitRequests(HttpContext http, RequestDelegate next)
    {
        if (http.GetEndpoint()?.Metadata.GetMetadata<DisableRateLimitingAttribute>() is null
            && await http.RequestServices.GetRequiredService<RequestLimiter>().TryAcquireAsync(ApiKeys.ClientOf(http.User)) is { } retry)
        {
            http.RequestServices.GetRequiredService<TimbreMetrics>().Rejected(Synthesizer.Reason(RejectionReason.RateLimited));
            var detail = $"Too many requests for this API key (Timbre:Limits:RequestsPerMinute). Retry in {Math.Ceiling(retry.TotalSeconds):0} s.";
            await new RetryAfterResult(Problems.Create(StatusCodes.Status429TooManyRequests, detail, openAi: http.Request.Path.StartsWithSegments("/v1/audio")), retry).ExecuteAsync(http);
            return;
        }

        await next(http);
    }

    /// <summary>
    /// Only the host names in AllowedHosts are answered: a page that rebinds its own DNS name to this
    /// machine's address cannot reach Timbre through the victim's browser.
    /// </summary>
    private static async Task RefuseUnknownHosts(HttpContext http, RequestDelegate next, string[] allowed)
    {
        var host = http.Request.Host.Host;
        var ok = allowed.Any(a => a == "*"
            || a.Equals(host, StringComparison.OrdinalIgnoreCase)
            || (a.StartsWith("*.", StringComparison.Ordinal) && host.EndsWith(a[1..], StringComparison.OrdinalIgnoreCase))
            || (a.StartsWith('[') && a.Trim('[', ']').Equals(host.Trim('[', ']'), StringComparison.OrdinalIgnoreCase)));
        if (!ok)
        {
            var detail = $"This server does not answer to the host name '{host}'. Use one of AllowedHosts ({string.Join(";", allowed)}), or add '{host}' to AllowedHosts on the server.";
            await Problems.Create(StatusCodes.Status400BadRequest, detail).ExecuteAsync(http);
            return;
        }

        await next(http);
    }

    /// <summary>
    /// A web page on another origin may still send "simple" requests (a form upload, a WebSocket) that
    /// CORS does not stop; with auth off that would reach Timbre from any site the user visits. Any request
    /// a browser marks with a foreign Origin is refused.
    /// </summary>
    private static async Task RefuseForeignOrigins(HttpContext http, RequestDelegate next)
    {
        var origin = http.Request.Headers.Origin.ToString();
        if (origin.Length > 0 && !TrustedOrigins.Allows(http, origin))
        {
            var detail = $"Requests from pages at {origin} are refused. If that is your dashboard, add it to Timbre:Auth:AllowedOrigins.";
            await Problems.Create(StatusCodes.Status403Forbidden, detail).ExecuteAsync(http);
            return;
        }

        await next(http);
    }

    private static PartitionedRateLimiter<string> CreateLimiter(int requestsPerMinute, ClusterLink cluster)
    {
        if (requestsPerMinute == 0)
        {
            return new Unlimited();
        }

        // Bursts up to a minute's worth, refilled evenly in steps at most a second apart (as each request asks, no timer).
        var (period, perPeriod) = requestsPerMinute >= 60
            ? (TimeSpan.FromSeconds(1), requestsPerMinute / 60)
            : (TimeSpan.FromSeconds(60.0 / requestsPerMinute), 1);
        var local = new KeyedLimiter(
            () => new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
            {
                TokenLimit = requestsPerMinute,
                TokensPerPeriod = perPeriod,
                ReplenishmentPeriod = period,
                QueueLimit = 0,
                AutoReplenishment = false,
            }),
            period * ((requestsPerMinute + perPeriod - 1) / perPeriod));
        // With a cluster, one bucket per key for all nodes; this node's bucket while Redis is away.
        return cluster.Enabled ? new ClusterRateLimiter(local, cluster, requestsPerMinute, perPeriod, period) : local;
    }

    /// <summary>Timbre's own origin (the dashboard it serves) and those in Timbre:Auth:AllowedOrigins.</summary>
    private sealed class TrustedOrigins : ICorsPolicyProvider
    {
        public Task<CorsPolicy?> GetPolicyAsync(HttpContext context, string? policyName)
        {
            var origins = Configured(context).Append(Own(context)).ToArray();
            var policy = new CorsPolicyBuilder()
                .WithOrigins(origins)
                .WithMethods("GET", "POST", "DELETE")
                .AllowAnyHeader()
                .AllowCredentials()
                .WithExposedHeaders("Retry-After", "X-Sample-Rate")
                .Build();
            return Task.FromResult<CorsPolicy?>(policy);
        }

        public static bool Allows(HttpContext context, string origin) =>
            origin.Equals(Own(context), StringComparison.OrdinalIgnoreCase)
            || Configured(context).Any(o => o.Equals(origin, StringComparison.OrdinalIgnoreCase));

        private static string Own(HttpContext context) => $"{context.Request.Scheme}://{context.Request.Host}";

        private static IEnumerable<string> Configured(HttpContext context) =>
            context.RequestServices.GetRequiredService<IOptions<TimbreOptions>>().Value.Auth.AllowedOrigins.Select(o => o.TrimEnd('/'));
    }
}
