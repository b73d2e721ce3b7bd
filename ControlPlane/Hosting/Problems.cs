using Microsoft.AspNetCore.Http.HttpResults;

namespace Timbre.ControlPlane.Hosting;

/// <summary>Problem details with the titles Timbre uses everywhere; the detail says what to change.</summary>
public static class Problems
{
    public static ProblemHttpResult BadRequest(string detail, string? field = null) =>
        Create(StatusCodes.Status400BadRequest, detail, field);

    public static ProblemHttpResult NotFound(string detail) =>
        Create(StatusCodes.Status404NotFound, detail);

    public static ProblemHttpResult TooLarge(string detail) =>
        Create(StatusCodes.Status413PayloadTooLarge, detail);

    public static ProblemHttpResult Unavailable(string detail) =>
        Create(StatusCodes.Status503ServiceUnavailable, detail);

    /// <summary>
    /// A problem details body. With <paramref name="openAi"/> it also carries OpenAI's
    /// <c>error</c> object, so OpenAI SDKs show the message instead of a bare status.
    /// </summary>
    public static ProblemHttpResult Create(int status, string detail, string? field = null, bool openAi = false)
    {
        var extensions = new Dictionary<string, object?>();
        if (field is not null)
        {
            extensions["field"] = field;
        }

        if (openAi)
        {
            extensions["error"] = new Dictionary<string, object?>
            {
                ["message"] = detail,
                ["type"] = status switch
                {
                    401 => "authentication_error",
                    429 => "rate_limit_error",
                    >= 500 => "server_error",
                    _ => "invalid_request_error",
                },
                ["param"] = field,
                ["code"] = null,
            };
        }

        return TypedResults.Problem(detail, statusCode: status, title: Title(status), extensions: extensions.Count == 0 ? null : extensions);
    }

    public static string Title(int status) => status switch
    {
        400 => "Invalid request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not found",
        413 => "Upload too large",
        429 => "Too many requests",
        503 => "Not ready",
        504 => "Timed out",
        _ => "Server error",
    };
}

/// <summary>A result with a Retry-After header in front of it.</summary>
public sealed class RetryAfterResult(IResult inner, TimeSpan retryAfter) : IResult
{
    public Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        httpContext.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return inner.ExecuteAsync(httpContext);
    }
}
