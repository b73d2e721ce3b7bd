using Py = Python.Runtime;

namespace Timbre.PyRuntime;

/// <summary>
/// The Python threads' work, first in first out. An item wakes exactly one idle thread: with a channel,
/// every waiting thread woke for each item and all but one went back to sleep, which on a small machine
/// took CPU from the Python work itself.
/// </summary>
internal sealed class WorkQueue
{
    private readonly Queue<IWorkItem> items = new();
    private readonly object gate = new(); // a monitor: Monitor.Wait and Pulse need one
    private bool closed;

    public bool TryAdd(IWorkItem item)
    {
        lock (gate)
        {
            if (closed)
            {
                return false;
            }

            items.Enqueue(item);
            Monitor.Pulse(gate);
            return true;
        }
    }

    /// <summary>The next item, waiting for one; null once closed.</summary>
    public IWorkItem? Take()
    {
        lock (gate)
        {
            while (items.Count == 0)
            {
                if (closed)
                {
                    return null;
                }

                Monitor.Wait(gate);
            }

            return items.Dequeue();
        }
    }

    public void Close()
    {
        lock (gate)
        {
            closed = true;
            Monitor.PulseAll(gate);
        }
    }
}

internal interface IWorkItem
{
    void Execute(PyScope scope);
}

internal sealed class WorkItem<T>(PyWork<T> body, CancellationToken cancellationToken) : IWorkItem
{
    private readonly TaskCompletionSource<T> completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<T> Task => completion.Task;

    public void Execute(PyScope scope)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            completion.TrySetCanceled(cancellationToken);
            return;
        }

        try
        {
            completion.TrySetResult(body(scope));
        }
        catch (Py.PythonException e)
        {
            // Read into plain data here, while the GIL is held.
            completion.TrySetException(PythonException.From(e));
        }
        catch (Exception e)
        {
            // Whatever else the work threw belongs to its caller.
            completion.TrySetException(e);
        }
    }
}
