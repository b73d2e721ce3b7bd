using Microsoft.Extensions.Options;
using Timbre.PyRuntime;

namespace Timbre.ControlPlane.Hosting;

/// <summary>Timbre's configuration section ("Timbre").</summary>
public sealed class TimbreOptions
{
    public const string Section = "Timbre";

    /// <summary>Where voices, caches and jobs live.</summary>
    public string DataDirectory { get; set; } = "";

    public EngineOptions Engine { get; set; } = new();

    public PythonOptions Python { get; set; } = new();

    public LimitOptions Limits { get; set; } = new();
}

/// <summary>Which engine serves requests that name none.</summary>
public sealed class EngineOptions
{
    public static readonly IReadOnlyList<string> Known = ["classic", "qwen3", "xtts"];

    public string Default { get; set; } = "classic";
}

/// <summary>Input limits; each is reported to the caller when exceeded.</summary>
public sealed class LimitOptions
{
    public int MaxTextLength { get; set; } = 5000;

    public long MaxUploadBytes { get; set; } = 10 * 1024 * 1024;

    public double MaxSampleSeconds { get; set; } = 60;

    public int MaxFilesPerVoice { get; set; } = 10;
}

/// <summary>Rejects a configuration that cannot work, saying which key to change.</summary>
public sealed class TimbreOptionsValidator : IValidateOptions<TimbreOptions>
{
    public ValidateOptionsResult Validate(string? name, TimbreOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            errors.Add("Timbre:DataDirectory is empty: set it to a writable folder for the voice library.");
        }

        if (!EngineOptions.Known.Contains(options.Engine.Default))
        {
            errors.Add($"Timbre:Engine:Default is '{options.Engine.Default}': use one of {string.Join(", ", EngineOptions.Known)}.");
        }

        if (string.IsNullOrWhiteSpace(options.Python.Executable))
        {
            errors.Add("Timbre:Python:Executable is empty: set it to /usr/bin/python3 or a venv's bin/python.");
        }

        if (options.Limits.MaxTextLength is < 1 or > 1_000_000)
        {
            errors.Add("Timbre:Limits:MaxTextLength must be between 1 and 1000000.");
        }

        if (options.Limits.MaxUploadBytes < 1024)
        {
            errors.Add("Timbre:Limits:MaxUploadBytes must be at least 1024.");
        }

        if (options.Limits.MaxSampleSeconds is < 1 or > 600)
        {
            errors.Add("Timbre:Limits:MaxSampleSeconds must be between 1 and 600.");
        }

        if (options.Limits.MaxFilesPerVoice is < 1 or > 100)
        {
            errors.Add("Timbre:Limits:MaxFilesPerVoice must be between 1 and 100.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
