using System.Diagnostics;

namespace Timbre.PyRuntime;

/// <summary>Finds the libpython that belongs to an interpreter, by asking that interpreter.</summary>
public static class PythonLocator
{
    /// <summary>Supported CPython minor versions: the C API used here is the same across them.</summary>
    public static readonly IReadOnlyList<string> SupportedVersions = ["3.10", "3.11", "3.12", "3.13"];

    private const string Probe =
        "import os, sys, sysconfig\n" +
        "print(f'{sys.version_info[0]}.{sys.version_info[1]}')\n" +
        "print(os.path.join(sysconfig.get_config_var('LIBDIR') or '', sysconfig.get_config_var('INSTSONAME') or ''))\n";

    /// <summary>Returns (version, libpython path) or throws with what to install or configure.</summary>
    public static (string Version, string Library) Locate(string executable)
    {
        if (!File.Exists(executable))
        {
            throw new PythonStartupException(
                $"Python interpreter '{executable}' does not exist. Install python3 (Debian: apt-get install python3 libpython3.11) or set Timbre:Python:Executable.");
        }

        var psi = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(Probe);
        using var process = Process.Start(psi) ?? throw new PythonStartupException($"Could not start {executable}.");
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new PythonStartupException($"{executable} failed to describe itself: {error.Trim()}");
        }

        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var version = lines[0];
        if (!SupportedVersions.Contains(version))
        {
            throw new PythonStartupException(
                $"{executable} is Python {version}; Timbre embeds CPython {string.Join(", ", SupportedVersions)}.");
        }

        var library = lines.Length > 1 ? lines[1] : "";
        if (!File.Exists(library))
        {
            throw new PythonStartupException(
                $"{executable} has no shared libpython at '{library}'. Install libpython{version} (Debian) or set Timbre:Python:Library.");
        }

        return (version, library);
    }
}

/// <summary>The interpreter could not be found or started; the message says what to change.</summary>
public sealed class PythonStartupException(string message, Exception? inner = null) : Exception(message, inner);
