using Microsoft.AspNetCore.Http.HttpResults;

namespace Timbre.ControlPlane.Hosting;

/// <summary>Problem details with the titles Timbre uses everywhere; the detail says what to change.</summary>
public static class Problems
{
    public static ProblemHttpResult BadRequest(string detail, string? field = null) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status400BadRequest, title: "Invalid request",
            extensions: field is null ? null : new Dictionary<string, object?> { ["field"] = field });

    public static ProblemHttpResult NotFound(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Not found");

    public static ProblemHttpResult TooLarge(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status413PayloadTooLarge, title: "Upload too large");

    public static ProblemHttpResult Unavailable(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status503ServiceUnavailable, title: "Not ready");
}
