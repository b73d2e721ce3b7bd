using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Python.Runtime;
using Py = Python.Runtime;

namespace Timbre.PyRuntime;

/// <summary>One embedded CPython interpreter (through pythonnet) and the threads that run all Python work.</summary>
/// <remarks>
/// <para>This class owns the GIL rules. Callers never hold the GIL: work arrives through one channel as
/// items, results leave as .NET values, and no Python reference crosses an await (see <see cref="PyObject"/>).</para>
/// <para><see cref="PythonOptions.Threads"/> dedicated threads each keep one permanent thread state. A thread takes
/// the GIL for one work item — one call, or one step of one stream — and releases it before waiting for the next,
/// so Python's own threads (flite's, torch's) run in between. Because steps of different streams run on different
/// threads, a step that waits with the GIL released (a GPU engine waiting on its worker) blocks only its own thread:
/// the other threads keep taking the GIL and the other streams keep moving.</para>
/// <para>The interpreter is never finalised: torch and CUDA crash in Py_Finalize, so a server drains and exits.</para>
/// </remarks>
public sealed partial class PythonRuntime : IAsyncDisposable
{
    [ThreadStatic]
    private static bool onPythonThread;

    private readonly WorkQueue work = new();
    private readonly ILogger logger;

    /// <summary>The Python threads' own thread states, held for the life of the process.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentBag<IDisposable> ThreadStates = [];

    private PythonRuntime(ILogger logger) => this.logger = logger;

    internal static bool OnPythonThread => onPythonThread;

    /// <summary>sys.version of the embedded interpreter.</summary>
    public string Version { get; private set; } = "";

    /// <summary>sys.prefix: tells which environment (system or venv) is embedded.</summary>
    public string Prefix { get; private set; } = "";

    /// <summary>Starts the interpreter and its threads; fails with a message that says what to fix.</summary>
    public static async Task<PythonRuntime> StartAsync(PythonOptions options, ILogger<PythonRuntime>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var runtime = new PythonRuntime((ILogger?)logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var (_, library) = string.IsNullOrEmpty(options.Library)
            ? PythonLocator.Locate(options.Executable)
            : ("", options.Library);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        new Thread(() => runtime.Start(options, library, started)) { IsBackground = true, Name = "python-0" }.Start();
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

    /// <summary>Runs work on a Python thread with the GIL held.</summary>
    public Task<T> InvokeAsync<T>(PyWork<T> body, CancellationToken cancellationToken)
    {
        var item = new WorkItem<T>(body, cancellationToken);
        if (!work.TryAdd(item))
        {
            return Task.FromException<T>(new ObjectDisposedException(nameof(PythonRuntime)));
        }

        return item.Task;
    }

    /// <summary>Streams the items of a Python iterable as .NET values.</summary>
    /// <remarks>
    /// A producer advances the iterator one item per work item, so many streams interleave across the Python
    /// threads instead of one monopolising them. The channel is bounded at <paramref name="capacity"/>:
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
            // The call and its first step are one work item: the first chunk (the time to first audio)
            // waits for one Python thread, not two.
            var (kept, first) = await InvokeAsync(py =>
            {
                using var iterable = start(py);
                using var it = iterable.Iter();
                var step = Step(py, it, convert);
                return (step.Done ? null : it.Keep(this), step);
            }, ct).ConfigureAwait(false);
            iterator = kept;
            if (!first.Done)
            {
                await writer.WriteAsync(first.Item, ct).ConfigureAwait(false);
                while (await writer.WaitToWriteAsync(ct).ConfigureAwait(false))
                {
                    var (done, item) = await InvokeAsync(py =>
                    {
                        using var it = iterator!.Open(py);
                        return Step(py, it, convert);
                    }, ct).ConfigureAwait(false);
                    if (done)
                    {
                        break;
                    }

                    await writer.WriteAsync(item, ct).ConfigureAwait(false);
                }
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

    /// <summary>One item of the iterator, converted; a conversion that fails closes a generator at once.</summary>
    private static (bool Done, T Item) Step<T>(PyScope py, PyObject it, PyConvert<T> convert)
    {
        using var next = it.Next();
        if (next.IsNull)
        {
            return (true, default!);
        }

        try
        {
            return (false, convert(py, next));
        }
        catch
        {
            // An exhausted or failed generator is finished already; one suspended at a bad item is not.
            try
            {
                Close(it);
            }
            catch (Py.PythonException)
            {
                // The conversion's error is the one the caller needs; a failing close() adds nothing to it.
            }

            throw;
        }
    }

    private static void Close(PyObject it)
    {
        if (it.HasAttr("close"))
        {
            using var close = it.GetAttr("close");
            using var _ = close.Call();
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
                Close(it);
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

    /// <summary>Stops taking work and lets the threads end. The interpreter is deliberately left initialised.</summary>
    public ValueTask DisposeAsync()
    {
        work.Close();
        return ValueTask.CompletedTask;
    }

    /// <summary>Thread 0: starts the interpreter, then the other threads, then serves like them.</summary>
    private void Start(PythonOptions options, string library, TaskCompletionSource started)
    {
        onPythonThread = true;
        nint state;
        try
        {
            Initialise(options, library);
            state = PythonEngine.BeginAllowThreads();
        }
        catch (Exception e)
        {
            started.SetException(e is PythonStartupException ? e : new PythonStartupException($"Python failed to start: {e.Message}", e));
            return;
        }

        for (var i = 1; i < (options.Threads > 0 ? options.Threads : 4); i++)
        {
            new Thread(() =>
            {
                onPythonThread = true;
                // PyGILState_Ensure gives this thread its thread state; the GIL is then released at once and the
                // state kept for good (the thread lives as long as the process, and a GILState's finaliser throws
                // if it is collected unreleased).
                ThreadStates.Add(Py.Py.GIL());
                Serve(PythonEngine.BeginAllowThreads());
            }) { IsBackground = true, Name = $"python-{i}" }.Start();
        }

        started.SetResult();
        Serve(state);
    }

    /// <summary>Runs work items one at a time, holding the GIL only while one runs.</summary>
    private void Serve(nint state)
    {
        // A dedicated thread may block; it holds no GIL while it waits.
        var me = new WorkQueue.Waiter();
        while (work.Take(me) is { } item)
        {
            PythonEngine.EndAllowThreads(state);
            try
            {
                item.Execute(new PyScope(this));
            }
            finally
            {
                state = PythonEngine.BeginAllowThreads();
            }
        }
    }

    private void Initialise(PythonOptions options, string library)
    {
        Runtime.PythonDLL = library;
        if (PythonEngine.IsInitialized)
        {
            throw new PythonStartupException("CPython is already initialised in this process; only one PythonRuntime may exist.");
        }

        // argv[0] alone configures the interpreter: Python derives prefix, site-packages and any
        // pyvenv.cfg from it, exactly as when that executable is run.
        PythonEngine.ProgramName = options.Executable;
        // No Python signal handlers: Ctrl-C and SIGTERM stay with .NET (the drain).
        PythonEngine.Initialize(setSysArgv: false, initSigs: false);
        KeepInterpreterAtExit();

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
        var sysPath = PyObject.StrOf(path.Value);
        LogStarted(library, Version, Prefix, sysPath);
    }

    /// <summary>
    /// pythonnet tears its runtime down at process exit, taking the GIL and collecting Python objects; with a
    /// GPU engine loaded that runs torch and CUDA destructors while the process dies. Timbre never finalises
    /// the interpreter (it drains and exits), so that handler is removed.
    /// </summary>
    private void KeepInterpreterAtExit()
    {
        var handler = typeof(PythonEngine).GetMethod("OnProcessExit", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static);
        if (handler is null)
        {
            LogExitHandlerKept();
            return;
        }

        AppDomain.CurrentDomain.ProcessExit -= (EventHandler)Delegate.CreateDelegate(typeof(EventHandler), handler);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded Python {Library} {Version}; sys.prefix={Prefix}; sys.path={SysPath}")]
    private partial void LogStarted(string library, string version, string prefix, string sysPath);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Closing a Python stream raised {PythonType}: {PythonMessage}")]
    private partial void LogCloseFailed(string pythonType, string pythonMessage);

    [LoggerMessage(Level = LogLevel.Warning, Message = "pythonnet's process-exit teardown could not be removed; the interpreter is torn down at exit")]
    private partial void LogExitHandlerKept();
}
