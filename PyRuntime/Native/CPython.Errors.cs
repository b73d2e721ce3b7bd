using System.Runtime.InteropServices;

namespace Timbre.PyRuntime.Native;

/// <summary>The per-thread error indicator (Python/errors.c).</summary>
internal static partial class CPython
{
    /// <summary>Borrowed reference to the pending exception type, or NULL.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial nint PyErr_Occurred();

    /// <summary>Moves the pending exception out (new references, any may be NULL) and clears it.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial void PyErr_Fetch(out nint type, out nint value, out nint traceback);

    [LibraryImport(LibPython.Name)]
    public static partial void PyErr_NormalizeException(ref nint type, ref nint value, ref nint traceback);

    [LibraryImport(LibPython.Name)]
    public static partial void PyErr_Clear();
}
