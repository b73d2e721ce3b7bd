using Microsoft.Net.Http.Headers;

namespace Timbre.ControlPlane.Dashboard;

/// <summary>The web dashboard at /: static files from wwwroot, served without a key (the page asks for one), under a strict CSP.</summary>
public static class DashboardExtensions
{
    /// <summary>
    /// Everything the page loads comes from Timbre itself: its own scripts and styles (no inline code, no eval),
    /// images and recordings it draws or records (data:, blob:), and fetch/WebSocket to its own origin. Nothing
    /// may frame it, and it submits no forms anywhere.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; " +
        "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    /// <summary>
    /// Security headers on every response, then the dashboard's files. Placed before authentication: the page and its
    /// scripts hold no data, and every call they make carries the key the user typed.
    /// </summary>
    public static WebApplication UseDashboard(this WebApplication app)
    {
        app.Use(async (http, next) =>
        {
            var headers = http.Response.Headers;
            headers[HeaderNames.XContentTypeOptions] = "nosniff";
            headers["Referrer-Policy"] = "no-referrer";
            // The API reference (/docs) brings its own page and scripts; everything else, the dashboard included, gets the strict policy.
            if (!http.Request.Path.StartsWithSegments("/docs"))
            {
                headers[HeaderNames.ContentSecurityPolicy] = ContentSecurityPolicy;
                headers["Permissions-Policy"] = "microphone=(self), camera=(), geolocation=()";
            }

            await next(http);
        });
        app.UseDefaultFiles();
        app.UseStaticFiles(new StaticFileOptions
        {
            // Revalidate each time (ETag): a changed page reaches every browser at its next load.
            OnPrepareResponse = f => f.Context.Response.Headers.CacheControl = "no-cache",
        });
        return app;
    }
}
