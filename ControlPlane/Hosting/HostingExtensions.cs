using Microsoft.Extensions.Options;

namespace Timbre.ControlPlane.Hosting;

/// <summary>Configuration, problem details and the pieces every feature relies on.</summary>
public static partial class HostingExtensions
{
    /// <summary>
    /// A thread for every stream the engines may run at once and two for calls (voice preparation,
    /// enrolment polls), but no more than four per core: beyond that more threads only contend for the
    /// GIL. Measured on 2 cores with 16 classic streams started together (README, "Which threads run
    /// Python"): 4 threads tripled first-audio p95, 20 brought underruns, 8 gave neither.
    /// </summary>
    public static int AutomaticPythonThreads(SpeechOptions speech, int cores) =>
        Math.Clamp(EngineOptions.Known.Sum(speech.ConcurrencyOf) + 2, 4, 4 * Math.Max(1, cores));

    public static WebApplicationBuilder AddTimbreCore(this WebApplicationBuilder builder)
    {
        // Timbre's messages are English and its numbers machine-read: they read the same whatever the
        // desktop's locale (globalization is on only to normalise Unicode names).
        System.Globalization.CultureInfo.DefaultThreadCurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
        System.Globalization.CultureInfo.DefaultThreadCurrentUICulture = System.Globalization.CultureInfo.InvariantCulture;
        System.Globalization.CultureInfo.CurrentCulture = System.Globalization.CultureInfo.InvariantCulture;
        builder.Services.AddOptions<TimbreOptions>()
            .BindConfiguration(TimbreOptions.Section)
            .PostConfigure(o =>
            {
                if (string.IsNullOrWhiteSpace(o.DataDirectory))
                {
                    o.DataDirectory = DefaultDataDirectory();
                }

                o.DataDirectory = Path.GetFullPath(o.DataDirectory);
                if (o.Python.Threads == 0)
                {
                    o.Python.Threads = AutomaticPythonThreads(o.Speech, Environment.ProcessorCount);
                }
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
                    var (detail, named) = JsonProblem(json, field);
                    ctx.ProblemDetails.Detail = detail;
                    if (named)
                    {
                        ctx.ProblemDetails.Extensions["field"] = field;
                    }
                }
            }
        });
        return builder;
    }

    /// <summary>What was wrong with a JSON body, in a caller's words, and whether it names the field.</summary>
    private static (string Detail, bool NamesField) JsonProblem(System.Text.Json.JsonException json, string? field)
    {
        // System.Text.Json reports text it cannot turn into a string (invalid UTF-8, a \ud800 escape without
        // its pair) as a conversion failure with the decoding error inside.
        if (field is not null && json.InnerException is InvalidOperationException { Message: var m }
            && (m.Contains("UTF-8", StringComparison.Ordinal) || m.Contains("UTF-16", StringComparison.Ordinal)))
        {
            return ($"{field} is not valid text: it has bytes that are not UTF-8 or a lone surrogate (such as \\ud800 without its pair). Send the body as UTF-8 with whole characters.", true);
        }

        if (field is not null && json.Message.StartsWith("The JSON value could not be converted", StringComparison.Ordinal))
        {
            return ($"{field} has the wrong type: send {Expected(json.Message)}.", true);
        }

        return ($"The JSON body could not be read: {json.Message}", false);
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
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Timbre.ControlPlane.ClientErrors");
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = e => e is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError,
            // A malformed request is the client's mistake: one line at Information, no stack trace, so no
            // client can fill the error log. Only server faults are logged as errors.
            SuppressDiagnosticsCallback = context =>
            {
                if (context.Exception is not BadHttpRequestException bad)
                {
                    return false;
                }

                if (logger.IsEnabled(LogLevel.Information))
                {
                    var request = context.HttpContext.Request;
                    LogClientError(logger, request.Method, request.Path.Value ?? "", bad.StatusCode, (bad.InnerException ?? bad).Message);
                }

                return true;
            },
        });
        app.UseStatusCodePages();
        return app;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Refused {Method} {Path} with {Status}: {Reason}")]
    private static partial void LogClientError(ILogger logger, string method, string path, int status, string reason);
}
