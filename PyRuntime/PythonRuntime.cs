using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Timbre.PyRuntime.Native;

namespace Timbre.PyRuntime;

/// <summary>One embedded CPython interpreter, owned by one dedicated thread that runs all Python work.</summary>
/// <remarks>
/// The thread keeps one permanent thread state: it holds the GIL while it runs work items and releases
/// it while it waits, so Python's own threads (torch, tokenizers) can run in between. Callers never hold
/// the GIL; their work arrives through a channel and results leave as .NET values.
/// The interpreter is never finalised: torch and CUDA crash in Py_Finalize, so a server drains and exits.
/// </remarks>
public sealed partial class PythonRuntime : IAsyncDisposable
{
    [ThreadStatic]
    private static bool onPythonThread;

    private readonly Channel<IWorkItem> work = Channel.CreateUnbounded<IWorkItem>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ILogger logger;
    private readonly Thread thread;

    private PythonRuntime(ILogger logger)
    {
        this.logger = logger;
        thread = new Thread(Run) { IsBackground = true, Name = "python" };
    }

    internal static bool OnPythonThread => onPythonThread;

    /// <summary>sys.version of the embedded interpreter.</summary>
    public string Version { get; private set; } = "";

    /// <summary>sys.prefix: tells which environment (system or venv) is embedded.</summary>
    public string Prefix { get; private set; } = "";

    /// <summary>Starts the interpreter on its own thread; fails with a message that says what to fix.</summary>
    public static async Task<PythonRuntime> StartAsync(PythonOptions options, ILogger<PythonRuntime>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var runtime = new PythonRuntime((ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var (_, library) = string.IsNullOrEmpty(options.Library)
            ? PythonLocator.Locate(options.Executable)
            : ("", options.Library);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        runtime.thread.Start((options, library, started));
        await started.Task.ConfigureAwait(false);
        return runtime;
    }

    private static readonly Lock SharedGate = new();
    private static (string Executable, Task<PythonRuntime> Runtime)? shared;

    /// <summary>The process's one interpreter, started on first use; every later caller gets the same.</summary>
    /// <remarks>CPython cannot be started twice in a process, so hosts that come and go (tests) share it.</remarks>
    public static Task<PythonRuntime> GetOrStartAsync(PythonOptions options, ILogger<PythonRuntime>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        lock (SharedGate)
        {
            if (shared is { } s && !s.Runtime.IsFaulted)
            {
                return s.Executable == options.Executable
                    ? s.Runtime
                    : throw new PythonStartupException($"This process already embeds {s.Executable}; it cannot switch to {options.Executable}.");
            }

            var task = StartAsync(options, logger);
            shared = (options.Executable, task);
            return task;
        }
    }

    /// <summary>Runs work on the Python thread with the GIL held.</summary>
    public Task<T> InvokeAsync<T>(PyWork<T> body, CancellationToken cancellationToken)
    {
        var item = new WorkItem<T>(body, cancellationToken);
        if (!work.Writer.TryWrite(item))
        {
            return Task.FromException<T>(new ObjectDisposedException(nameof(PythonRuntime)));
        }

        return item.Task;
    }

    /// <summary>Streams the items of a Python iterable as .NET values.</summary>
    /// <remarks>
    /// A producer advances the iterator one item per work item, so many streams interleave on the one
    /// Python thread instead of one monopolising it. The channel is bounded at <paramref name="capacity"/>:
    /// the engine runs at most that far ahead of a slow consumer, which bounds memory per stream. When
    /// the consumer stops early or is cancelled the iterator is closed, so a generator's finally runs.
    /// </remarks>
    public async IAsyncEnumerable<T> StreamAsync<T>(
        PyStart start,
        PyConvert<T> convert,
        int capacity,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateBounded<T>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var producer = ProduceAsync(start, convert, channel.Writer, stop.Token);
        try
        {
            await foreach (var item in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // Items already buffered must not reach a consumer that has cancelled.
                cancellationToken.ThrowIfCancellationRequested();
                yield return item;
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await producer.ConfigureAwait(false);
        }
    }

    private async Task ProduceAsync<T>(PyStart start, PyConvert<T> convert, ChannelWriter<T> writer, CancellationToken ct)
    {
        PyHandle? iterator = null;
        Exception? failure = null;
        try
        {
            iterator = await InvokeAsync(py =>
            {
                using var iterable = start(py);
                using var it = iterable.Iter();
                return it.Keep(this);
            }, ct).ConfigureAwait(false);

            while (await writer.WaitToWriteAsync(ct).ConfigureAwait(false))
            {
                var (done, item) = await InvokeAsync(py =>
                {
                    using var it = iterator.Open(py);
                    using var next = it.Next();
                    return next.IsNull ? (true, default(T)!) : (false, convert(py, next));
                }, ct).ConfigureAwait(false);
                if (done)
                {
                    break;
                }

                await writer.WriteAsync(item, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            // Handed to the consumer through the channel; it is not swallowed.
            failure = e;
        }
        finally
        {
            if (iterator is not null)
            {
                await CloseAsync(iterator).ConfigureAwait(false);
            }

            writer.TryComplete(failure);
        }
    }

    /// <summary>Calls close() on a generator so its finally blocks run, then drops the reference.</summary>
    private async Task CloseAsync(PyHandle iterator)
    {
        try
        {
            await InvokeAsync(py =>
            {
                using var it = iterator.Open(py);
                if (it.HasAttr("close"))
                {
                    using var close = it.GetAttr("close");
                    using var _ = close.Call();
                }

                return true;
            }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (PythonException e)
        {
            LogCloseFailed(e.PythonType, e.PythonMessage);
        }
        finally
        {
            await iterator.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Stops taking work and lets the thread end. The interpreter is deliberately left initialised.</summary>
    public ValueTask DisposeAsync()
    {
        work.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }

    private void Run(object? state)
    {
        var (options, library, started) = ((PythonOptions, string, TaskCompletionSource))state!;
        onPythonThread = true;
        nint threadState;
        try
        {
            Initialise(options, library);
            threadState = CPython.PyEval_SaveThread();
        }
        catch (Exception e)
        {
            started.SetException(e is PythonStartupException ? e : new PythonStartupException($"Python failed to start: {e.Message}", e));
            return;
        }

        started.SetResult();
        var reader = work.Reader;
        while (true)
        {
            if (!reader.TryRead(out var item))
            {
                // A dedicated thread may block; it holds no GIL while it waits.
                if (!reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
                {
                    break;
                }

                continue;
            }

            CPython.PyEval_RestoreThread(threadState);
            try
            {
                item.Execute(new PyScope(this));
                // Drain what is already queued before giving the GIL away again.
                while (reader.TryRead(out item))
                {
                    item.Execute(new PyScope(this));
                }
            }
            finally
            {
                threadState = CPython.PyEval_SaveThread();
            }
        }
    }

    private void Initialise(PythonOptions options, string library)
    {
        LibPython.Load(library);
        if (CPython.Py_IsInitialized() != 0)
        {
            throw new PythonStartupException("CPython is already initialised in this process; only one PythonRuntime may exist.");
        }

        // argv[0] alone configures the interpreter: Python derives prefix, site-packages and any
        // pyvenv.cfg from it, exactly as when that executable is run.
        CPython.Py_SetProgramName(CPython.Py_DecodeLocale(options.Executable, 0));
        CPython.Py_InitializeEx(0);

        var scope = new PyScope(this);
        using var sys = scope.Import("sys");
        using var path = sys.GetAttr("path");
        using var insert = path.GetAttr("insert");
        foreach (var folder in options.SearchPath().Reverse())
        {
            using var _ = insert.Call(0, folder);
        }

        using var version = sys.GetAttr("version");
        using var prefix = sys.GetAttr("prefix");
        Version = version.AsString();
        Prefix = prefix.AsString();
        var sysPath = PyObject.StrOf(path.Pointer);
        LogStarted(library, Version, Prefix, sysPath);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded Python {Library} {Version}; sys.prefix={Prefix}; sys.path={SysPath}")]
    private partial void LogStarted(string library, string version, string prefix, string sysPath);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Closing a Python stream raised {PythonType}: {PythonMessage}")]
    private partial void LogCloseFailed(string pythonType, string pythonMessage);

    private interface IWorkItem
    {
        void Execute(PyScope scope);
    }

    private sealed class WorkItem<T>(PyWork<T> body, CancellationToken cancellationToken) : IWorkItem
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
            catch (Exception e)
            {
                // Whatever the work threw (a PythonException included) belongs to its caller.
                Native.CPython.PyErr_Clear();
                completion.TrySetException(e);
            }
        }
    }
}
