namespace Timbre.PyRuntime;

/// <summary>Proof that the current code runs on one of the runtime's Python threads with the GIL held.</summary>
public readonly ref struct PyScope
{
    private readonly PythonRuntime runtime;

    internal PyScope(PythonRuntime runtime) => this.runtime = runtime;

    public PythonRuntime Runtime => runtime;

    /// <summary>import name; a new reference to the module.</summary>
    public PyObject Import(string module)
    {
        EnsureValid();
        return new PyObject(Python.Runtime.Py.Import(module), owned: true);
    }

    /// <summary>module.function(*args) with .NET arguments.</summary>
    public PyObject Call(string module, string function, params ReadOnlySpan<object?> args)
    {
        using var m = Import(module);
        using var f = m.GetAttr(function);
        return f.Call(args);
    }

    internal void EnsureValid()
    {
        if (runtime is null || !PythonRuntime.OnPythonThread)
        {
            throw new InvalidOperationException("Python objects may only be used inside PythonRuntime.InvokeAsync work.");
        }
    }
}

/// <summary>Work run on a Python thread; its result must be plain .NET data.</summary>
public delegate T PyWork<out T>(PyScope py);

/// <summary>Starts an iterable (usually a generator) on a Python thread.</summary>
public delegate PyObject PyStart(PyScope py);

/// <summary>Converts one item of a Python stream into .NET data.</summary>
public delegate T PyConvert<out T>(PyScope py, PyObject item);
