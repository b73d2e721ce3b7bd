namespace Timbre.PyRuntime;

/// <summary>Which interpreter to embed and where Timbre's Python code lives.</summary>
public sealed class PythonOptions
{
    /// <summary>
    /// The interpreter whose environment is embedded: Debian's /usr/bin/python3, or a venv's
    /// bin/python so that its site-packages, .pth files and pyvenv.cfg apply.
    /// </summary>
    public string Executable { get; set; } = "/usr/bin/python3";

    /// <summary>libpython to load; when empty it is asked of the interpreter (sysconfig).</summary>
    public string? Library { get; set; }

    /// <summary>
    /// Threads that run Python work. Each takes the GIL only for one step of work (one chunk of one
    /// stream), so a step that waits with the GIL released — a GPU worker, flite on its thread —
    /// holds up its own thread and not every other stream's next chunk. 0 (the default) leaves the
    /// number to the host (Timbre runs one per stream its engines may run at once, plus two); a
    /// runtime started with 0 runs 4.
    /// </summary>
    public int Threads { get; set; }

    /// <summary>Folders put first on sys.path; Timbre's own python/ folder is always added.</summary>
    public IList<string> ModulePaths { get; } = [];

    /// <summary>
    /// The folders put first on sys.path, in order: Timbre's own python/ folder (beside the
    /// assembly), then <see cref="ModulePaths"/>. The embedded interpreter and the recipes the
    /// server starts as child processes (PYTHONPATH) search the same folders in the same order.
    /// </summary>
    public IReadOnlyList<string> SearchPath() => [Path.Combine(AppContext.BaseDirectory, "python"), .. ModulePaths];
}
