using System.Runtime.InteropServices;

namespace Timbre.PyRuntime.Native;

/// <summary>Constructors and accessors of the built-in types that cross the boundary.</summary>
internal static unsafe partial class CPython
{
    [LibraryImport(LibPython.Name)]
    public static partial nint PyUnicode_FromStringAndSize(byte* utf8, nint size);

    /// <summary>Borrowed UTF-8 buffer owned by the str object; NULL with an error if o is not a str.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial byte* PyUnicode_AsUTF8AndSize(nint o, out nint size);

    [LibraryImport(LibPython.Name)]
    public static partial nint PyLong_FromLongLong(long v);

    /// <summary>-1 with an error set on failure (check PyErr_Occurred).</summary>
    [LibraryImport(LibPython.Name)]
    public static partial long PyLong_AsLongLong(nint o);

    [LibraryImport(LibPython.Name)]
    public static partial nint PyFloat_FromDouble(double v);

    /// <summary>-1.0 with an error set on failure (check PyErr_Occurred).</summary>
    [LibraryImport(LibPython.Name)]
    public static partial double PyFloat_AsDouble(nint o);

    [LibraryImport(LibPython.Name)]
    public static partial nint PyBool_FromLong(long v);

    [LibraryImport(LibPython.Name)]
    public static partial nint PyBytes_FromStringAndSize(byte* v, nint size);

    [LibraryImport(LibPython.Name)]
    public static partial nint PyTuple_New(nint size);

    /// <summary>Steals the reference to item, even on failure.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial int PyTuple_SetItem(nint tuple, nint pos, nint item);
}
