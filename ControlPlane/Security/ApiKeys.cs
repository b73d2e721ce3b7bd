using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Security;

/// <summary>API-key authentication: Authorization: Bearer, X-API-Key, or access_token on the hubs.</summary>
/// <remarks>
/// Keys are compared as SHA-256 digests with a fixed-time comparison against every configured key,
/// so neither the position of the first wrong character nor which key matched shows in the timing.
/// With no keys configured, only loopback callers are served unless Timbre:Auth:AllowInsecure is set:
/// that holds even if Kestrel is bound more widely than configuration says.
/// </remarks>
public sealed class ApiKeys(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IOptions<TimbreOptions> timbre,
    FailedKeyAttempts failures)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    /// <summary>The role of a caller that presented Timbre:Cluster:NodeKey: another Timbre node.</summary>
    public const string NodeRole = "timbre-node";

    /// <summary>The client name a node's requests are scheduled under (the node API has no per-key rate limit).</summary>
    public const string NodeClient = "node";

    // Set on a request refused for its address's wrong keys: the challenge answers 429 instead of 401.
    private static readonly object RefusedFor = new();

    /// <summary>The client a request belongs to, for fairness and rate limits: a key's id, or "local" with auth off.</summary>
    public static string ClientOf(ClaimsPrincipal? user) =>
        user?.FindFirstValue(ClaimTypes.NameIdentifier) ?? "anonymous";

    /// <summary>A key's public name: the start of its SHA-256, safe to log and to label metrics with.</summary>
    public static string IdOf(string key) => "key-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..8];

    private readonly AuthOptions auth = timbre.Value.Auth;
    private readonly byte[]? nodeKey = string.IsNullOrEmpty(timbre.Value.Cluster.NodeKey) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(timbre.Value.Cluster.NodeKey));

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        // Another Timbre node: the node API (/v1/cluster) and nothing else (the policies in SecurityExtensions).
        if (nodeKey is not null && Presented(Context.Request) is { } candidate
            && CryptographicOperations.FixedTimeEquals(nodeKey, SHA256.HashData(Encoding.UTF8.GetBytes(candidate))))
        {
            return Task.FromResult(Success(NodeClient, NodeRole));
        }

        var keys = auth.ApiKeys;
        if (keys.Count == 0)
        {
            var remote = Context.Connection.RemoteIpAddress;
            return Task.FromResult(auth.AllowInsecure || remote is null || IPAddress.IsLoopback(remote)
                ? Success("local")
                : AuthenticateResult.Fail("Timbre has no API keys and serves only this machine; set Timbre:Auth:ApiKeys to serve the network."));
        }

        var presented = Presented(Context.Request);
        if (presented is null)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (failures.Refused(Context.Connection.RemoteIpAddress) is { } wait)
        {
            Context.Items[RefusedFor] = wait;
            return Task.FromResult(AuthenticateResult.Fail($"Too many wrong API keys from this address; retry in {Math.Ceiling(wait.TotalSeconds):0} s with a key from Timbre:Auth:ApiKeys."));
        }

        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        string? match = null;
        foreach (var key in keys)
        {
            // No early exit: every key is compared whatever the outcome.
            if (CryptographicOperations.FixedTimeEquals(digest, SHA256.HashData(Encoding.UTF8.GetBytes(key))))
            {
                match = key;
            }
        }

        if (match is null)
        {
            failures.Failed(Context.Connection.RemoteIpAddress);
            return Task.FromResult(AuthenticateResult.Fail("The API key is not one of Timbre:Auth:ApiKeys."));
        }

        return Task.FromResult(Success(IdOf(match)));
    }

    private static string? Presented(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return authorization["Bearer ".Length..].Trim();
        }

        if (request.Headers.TryGetValue("X-API-Key", out var header) && !string.IsNullOrEmpty(header))
        {
            return header.ToString().Trim();
        }

        // Browsers cannot set headers on WebSocket and EventSource requests, so the hubs also take the key
        // from the query string; the log redaction keeps it out of the logs.
        if (request.Path.StartsWithSegments("/hubs") && request.Query.TryGetValue("access_token", out var token))
        {
            return token.ToString();
        }

        return null;
    }

    private static AuthenticateResult Success(string client, string? role = null)
    {
        Claim[] claims = role is null
            ? [new Claim(ClaimTypes.NameIdentifier, client)]
            : [new Claim(ClaimTypes.NameIdentifier, client), new Claim(ClaimTypes.Role, role)];
        var identity = new ClaimsIdentity(claims, SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var detail = Context.User.IsInRole(NodeRole)
            ? "Timbre:Cluster:NodeKey opens the node API (/v1/cluster) only: send an API key from Timbre:Auth:ApiKeys."
            : "The node API (/v1/cluster) takes this node's Timbre:Cluster:NodeKey, not an API key.";
        return Problems.Create(StatusCodes.Status403Forbidden, detail).ExecuteAsync(Context);
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        var detail = result.Failure?.Message
            ?? "This route needs an API key: send Authorization: Bearer <key> or X-API-Key: <key> (on /hubs, access_token=<key> also works).";
        var openAi = Request.Path.StartsWithSegments("/v1/audio") || Request.Path.StartsWithSegments("/v1/models");
        if (Context.Items[RefusedFor] is TimeSpan wait)
        {
            await new RetryAfterResult(Problems.Create(StatusCodes.Status429TooManyRequests, detail, openAi: openAi), wait).ExecuteAsync(Context);
            return;
        }

        Response.Headers.WWWAuthenticate = "Bearer";
        await Problems.Create(StatusCodes.Status401Unauthorized, detail, openAi: openAi).ExecuteAsync(Context);
    }
}
