using Timbre.PyRuntime.Native;

namespace Timbre.PyRuntime;

/// <summary>A strong reference kept between work items (a running generator, a loaded model).</summary>
/// <remarks>Only the Python thread touches the object; disposing posts the release to that thread.</remarks>
public sealed class PyHandle : IAsyncDisposable
{
    private readonly PythonRuntime runtime;
    private nint pointer;

    internal PyHandle(PythonRuntime runtime, nint pointer)
    {
        this.runtime = runtime;
        this.pointer = pointer;
    }

    internal nint Pointer => pointer != 0 ? pointer : throw new ObjectDisposedException(nameof(PyHandle));

    /// <summary>A borrowed view of the object for use inside one work item.</summary>
    public PyObject Open(PyScope scope)
    {
        scope.EnsureValid();
        return PyObject.Borrowed(Pointer);
    }

    public async ValueTask DisposeAsync()
    {
        var p = Interlocked.Exchange(ref pointer, 0);
        if (p != 0)
        {
            await runtime.InvokeAsync(_ =>
            {
                CPython.Py_DecRef(p);
                return true;
            }, CancellationToken.None).ConfigureAwait(false);
        }
    }
}
