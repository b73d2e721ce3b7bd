using System.Runtime.InteropServices;

namespace Timbre.PyRuntime.Native;

/// <summary>Reference counting, attributes, calls, import and iteration (Objects/object.c, abstract.c).</summary>
internal static partial class CPython
{
    [LibraryImport(LibPython.Name)]
    public static partial void Py_IncRef(nint o);

    [LibraryImport(LibPython.Name)]
    public static partial void Py_DecRef(nint o);

    /// <summary>New reference to the module, or NULL with an error set.</summary>
    [LibraryImport(LibPython.Name, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint PyImport_ImportModule(string name);

    /// <summary>New reference, or NULL with AttributeError set.</summary>
    [LibraryImport(LibPython.Name, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint PyObject_GetAttrString(nint o, string name);

    [LibraryImport(LibPython.Name, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int PyObject_HasAttrString(nint o, string name);

    /// <summary>callable(*args, **kwargs); args is a tuple, kwargs may be NULL. New reference or NULL.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial nint PyObject_Call(nint callable, nint args, nint kwargs);

    /// <summary>str(o): new reference or NULL.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial nint PyObject_Str(nint o);

    /// <summary>1 true, 0 false, -1 error.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial int PyObject_IsTrue(nint o);

    /// <summary>iter(o): new reference or NULL.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial nint PyObject_GetIter(nint o);

    /// <summary>Next item (new reference); NULL at the end with no error, or NULL with an error set.</summary>
    [LibraryImport(LibPython.Name)]
    public static partial nint PyIter_Next(nint iterator);
}
