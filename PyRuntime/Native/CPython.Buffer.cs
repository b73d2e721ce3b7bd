using System.Runtime.InteropServices;

namespace Timbre.PyRuntime.Native;

/// <summary>The buffer protocol (PEP 3118), used to copy arrays out without per-element calls.</summary>
internal static partial class CPython
{
    /// <summary>PyBUF_ND | PyBUF_STRIDES | C-contiguous (PyBUF_C_CONTIGUOUS).</summary>
    public const int PyBUF_C_CONTIGUOUS = 0x0038;

    /// <summary>Ask for the struct-module format string.</summary>
    public const int PyBUF_FORMAT = 0x0004;

    /// <summary>0 on success, -1 with BufferError set.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial int PyObject_GetBuffer(nint exporter, ref Py_buffer view, int flags);

    [LibraryImport(LibPython.Name)]
    public static partial void PyBuffer_Release(ref Py_buffer view);
}

/// <summary>Py_buffer as laid out by CPython 3.x (Include/pybuffer.h); stable across 3.8–3.13.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Py_buffer
{
    public nint buf;
    public nint obj;
    public nint len;
    public nint itemsize;
    public int @readonly;
    public int ndim;
    public nint format;
    public nint shape;
    public nint strides;
    public nint suboffsets;
    public nint @internal;
}
