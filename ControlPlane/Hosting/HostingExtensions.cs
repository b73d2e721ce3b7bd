using Microsoft.Extensions.Options;

namespace Timbre.ControlPlane.Hosting;

/// <summary>Configuration, problem details and the pieces every feature relies on.</summary>
public static class HostingExtensions
{
    public static WebApplicationBuilder AddTimbreCore(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<TimbreOptions>()
            .BindConfiguration(TimbreOptions.Section)
            .PostConfigure(o =>
            {
                if (string.IsNullOrWhiteSpace(o.DataDirectory))
                {
                    o.DataDirectory = DefaultDataDirectory();
                }

                o.DataDirectory = Path.GetFullPath(o.DataDirectory);
            })
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<TimbreOptions>, TimbreOptionsValidator>();
        // Binding failures (malformed JSON, wrong types) reach the exception handler so that the
        // problem details can say what was wrong instead of a bare 400.
        builder.Services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            var error = ctx.HttpContext.Features.Get<Microsoft.AspNetCore.Diagnostics.IExceptionHandlerFeature>()?.Error;
            if (error is BadHttpRequestException bad)
            {
                ctx.ProblemDetails.Status = bad.StatusCode;
                ctx.ProblemDetails.Title = "Invalid request";
                ctx.ProblemDetails.Detail = bad.Message;
                if (bad.InnerException is System.Text.Json.JsonException json)
                {
                    var field = FieldOf(json.Path);
                    var wrongType = field is not null && json.Message.StartsWith("The JSON value could not be converted", StringComparison.Ordinal);
                    ctx.ProblemDetails.Detail = wrongType
                        ? $"{field} has the wrong type: send {Expected(json.Message)}."
                        : $"The JSON body could not be read: {json.Message}";
                    if (wrongType)
                    {
                        ctx.ProblemDetails.Extensions["field"] = field;
                    }
                }
            }
        });
        return builder;
    }

    /// <summary>What a field should have been, in a caller's words, from System.Text.Json's conversion message.</summary>
    private static string Expected(string message) =>
        message.Contains("System.Double", StringComparison.Ordinal) || message.Contains("System.Single", StringComparison.Ordinal) || message.Contains("System.Int", StringComparison.Ordinal)
            ? "a number"
            : message.Contains("System.Boolean", StringComparison.Ordinal) ? "true or false"
            : message.Contains("System.String", StringComparison.Ordinal) ? "a string" : "a value of the documented type";

    /// <summary>"input" from a JSON path such as "$.input" or "$['input']"; null for the body itself or a malformed document.</summary>
    private static string? FieldOf(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$")
        {
            return null;
        }

        var name = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$').Trim('[', ']', '\'', '"');
        return name.Length == 0 ? null : name;
    }

    /// <summary>voices/ beside the repository when run from a checkout, else /var/lib/timbre.</summary>
    private static string DefaultDataDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ControlPlane.sln")))
            {
                return Path.Combine(dir.FullName, "voices");
            }
        }

        return "/var/lib/timbre";
    }

    public static WebApplication UseTimbreErrors(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = e => e is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError,
        });
        app.UseStatusCodePages();
        return app;
    }
}
