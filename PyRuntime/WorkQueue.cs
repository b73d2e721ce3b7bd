using Py = Python.Runtime;

namespace Timbre.PyRuntime;

/// <summary>
/// The Python threads' work, first in first out. An item wakes exactly one idle thread: with a channel,
/// every waiting thread woke for each item and all but one went back to sleep, which on a small machine
/// took CPU from the Python work itself.
/// </summary>
/// <remarks>
/// The thread woken is the one that went idle last. Under light load a stream's steps then stay on one or
/// two threads, much as in a Python program's own loop: a step's completion lets its producer queue the
/// next one, often before the thread that ran it is idle again, so at concurrency 1 two threads took them
/// about 60/40. Holding the completion until that thread was idle kept every step on one thread but
/// measured no change in CPU or first audio (40 paired requests), so it was not kept. Woken in turn (a
/// monitor's order), four threads took a stream's steps in rotation and the classic engine's first chunk
/// took 4-12 ms longer than in one thread (medians of paired rounds; 1-4 ms woken last-idle-first).
/// Under load every thread is busy and the order is moot.
/// </remarks>
internal sealed class WorkQueue
{
    private readonly Queue<IWorkItem> items = new();
    private readonly Stack<Waiter> idle = new();
    private readonly Lock gate = new();
    private bool closed;

    /// <summary>One thread's place among the idle ones.</summary>
    public sealed class Waiter
    {
        private readonly object signal = new(); // a monitor: Monitor.Wait and Pulse need one
        private bool woken;

        public void Wake()
        {
            lock (signal)
            {
                woken = true;
                Monitor.Pulse(signal);
            }
        }

        public void Wait()
        {
            lock (signal)
            {
                while (!woken)
                {
                    Monitor.Wait(signal);
                }

                woken = false;
            }
        }
    }

    public bool TryAdd(IWorkItem item)
    {
        Waiter? wake;
        lock (gate)
        {
            if (closed)
            {
                return false;
            }

            items.Enqueue(item);
            idle.TryPop(out wake);
        }

        wake?.Wake();
        return true;
    }

    /// <summary>The next item, waiting for one as <paramref name="me"/>; null once closed.</summary>
    public IWorkItem? Take(Waiter me)
    {
        while (true)
        {
            lock (gate)
            {
                if (items.TryDequeue(out var item))
                {
                    return item;
                }

                if (closed)
                {
                    return null;
                }

                idle.Push(me);
            }

            // A wake that came between the push and here is kept by the waiter, so none is lost; a thread
            // woken for an item that a busy thread took first finds the queue empty and goes idle again.
            me.Wait();
        }
    }

    public void Close()
    {
        Waiter[] all;
        lock (gate)
        {
            closed = true;
            all = [.. idle];
            idle.Clear();
        }

        foreach (var waiter in all)
        {
            waiter.Wake();
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
