using System.Runtime.InteropServices;

namespace Timbre.PyRuntime.Native;

/// <summary>Interpreter start-up and the thread state (Python/pylifecycle.c, Python/ceval.c).</summary>
internal static partial class CPython
{
    /// <summary>Decodes a locale-encoded path into a wchar_t* that Python owns; allowed before start-up.</summary>
    [LibraryImport(LibPython.Name, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint Py_DecodeLocale(string arg, nint size);

    /// <summary>Sets argv[0]; Python derives sys.prefix, site-packages and pyvenv.cfg handling from it.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial void Py_SetProgramName(nint name);

    /// <summary>Starts the interpreter; 0 = install no signal handlers (the host owns signals).</summary>
    [LibraryImport(LibPython.Name)]
    public static partial void Py_InitializeEx(int initsigs);

    [LibraryImport(LibPython.Name)]
    public static partial int Py_IsInitialized();

    /// <summary>Releases the GIL and returns the calling thread's state.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial nint PyEval_SaveThread();

    /// <summary>Takes the GIL back for a thread state saved by PyEval_SaveThread.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial void PyEval_RestoreThread(nint tstate);
}
