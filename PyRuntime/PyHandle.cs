using Py = Python.Runtime;

namespace Timbre.PyRuntime;

/// <summary>A strong reference kept between work items (a running generator, a loaded model).</summary>
/// <remarks>Only Python threads touch the object; disposing posts the release to one of them.</remarks>
public sealed class PyHandle : IAsyncDisposable
{
    private readonly PythonRuntime runtime;
    private Py.PyObject? value;

    internal PyHandle(PythonRuntime runtime, Py.PyObject value)
    {
        this.runtime = runtime;
        this.value = value;
    }

    internal Py.PyObject Value => value ?? throw new ObjectDisposedException(nameof(PyHandle));

    /// <summary>A borrowed view of the object for use inside one work item.</summary>
    public PyObject Open(PyScope scope)
    {
        scope.EnsureValid();
        return new PyObject(Value, owned: false);
    }

    public async ValueTask DisposeAsync()
    {
        var v = Interlocked.Exchange(ref value, null);
        if (v is not null)
        {
            // Released with the GIL held, on a Python thread, rather than left to pythonnet's finaliser queue.
            await runtime.InvokeAsync(_ =>
            {
                v.Dispose();
                return true;
            }, CancellationToken.None).ConfigureAwait(false);
        }
    }
}
