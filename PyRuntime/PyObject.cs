using System.Runtime.InteropServices;
using System.Text;
using Timbre.PyRuntime.Native;

namespace Timbre.PyRuntime;

/// <summary>A reference to a Python object that lives only inside one unit of work on the Python thread.</summary>
/// <remarks>
/// A ref struct: the compiler keeps it out of fields, lambdas and async methods, so a reference can
/// neither outlive the GIL nor cross an await. To keep an object between work items use <see cref="Keep"/>.
/// </remarks>
public ref struct PyObject
{
    private nint pointer;
    private readonly bool owned;

    private PyObject(nint pointer, bool owned)
    {
        this.pointer = pointer;
        this.owned = owned;
    }

    internal readonly nint Pointer => pointer;

    /// <summary>True for a NULL reference (only seen with throwOnNull: false).</summary>
    public readonly bool IsNull => pointer == 0;

    public readonly bool IsNone => pointer == NoneRef();

    /// <summary>Takes ownership of a new reference; NULL means a Python error is pending.</summary>
    internal static PyObject Own(nint p, bool throwOnNull = true)
    {
        if (p == 0 && throwOnNull)
        {
            throw PythonException.FetchPending();
        }

        return new PyObject(p, owned: true);
    }

    internal static PyObject Borrowed(nint p) => new(p, owned: false);

    internal static nint NoneRef() => LibPython.Export("_Py_NoneStruct");

    public readonly PyObject GetAttr(string name) => Own(CPython.PyObject_GetAttrString(pointer, name));

    public readonly bool HasAttr(string name) => CPython.PyObject_HasAttrString(pointer, name) == 1;

    /// <summary>str(getattr(o, name)), or null when there is no such attribute.</summary>
    internal readonly string? GetAttrOrNull(string name)
    {
        using var attr = Own(CPython.PyObject_GetAttrString(pointer, name), throwOnNull: false);
        if (attr.IsNull)
        {
            CPython.PyErr_Clear();
            return null;
        }

        return StrOf(attr.Pointer);
    }

    /// <summary>Calls this object with .NET values converted to Python (see <see cref="FromValue"/>).</summary>
    public readonly PyObject Call(params ReadOnlySpan<object?> args)
    {
        using var tuple = Own(CPython.PyTuple_New(args.Length));
        for (var i = 0; i < args.Length; i++)
        {
            var item = FromValue(args[i]);
            SetTupleItem(tuple.Pointer, i, item.Detach());
        }

        return Own(CPython.PyObject_Call(pointer, tuple.Pointer, 0));
    }

    /// <summary>Calls this object with one Python argument.</summary>
    public readonly PyObject CallWith(scoped in PyObject arg)
    {
        using var tuple = Own(CPython.PyTuple_New(1));
        CPython.Py_IncRef(arg.Pointer);
        SetTupleItem(tuple.Pointer, 0, arg.Pointer);
        return Own(CPython.PyObject_Call(pointer, tuple.Pointer, 0));
    }

    public readonly PyObject Iter() => Own(CPython.PyObject_GetIter(pointer));

    /// <summary>The next item of an iterator, or a NULL object at the end.</summary>
    public readonly PyObject Next()
    {
        var next = CPython.PyIter_Next(pointer);
        if (next == 0)
        {
            PythonException.ThrowIfPending();
        }

        return Own(next, throwOnNull: false);
    }

    public readonly unsafe string AsString()
    {
        var utf8 = CPython.PyUnicode_AsUTF8AndSize(pointer, out var size);
        if (utf8 == null)
        {
            throw PythonException.FetchPending();
        }

        return Encoding.UTF8.GetString(utf8, checked((int)size));
    }

    public readonly long AsInt64()
    {
        var v = CPython.PyLong_AsLongLong(pointer);
        if (v == -1)
        {
            PythonException.ThrowIfPending();
        }

        return v;
    }

    public readonly double AsDouble()
    {
        var v = CPython.PyFloat_AsDouble(pointer);
        if (v == -1.0)
        {
            PythonException.ThrowIfPending();
        }

        return v;
    }

    public readonly bool IsTrue()
    {
        var v = CPython.PyObject_IsTrue(pointer);
        if (v < 0)
        {
            throw PythonException.FetchPending();
        }

        return v == 1;
    }

    /// <summary>Copies a C-contiguous float32 buffer (numpy float32 array, array('f'), …) into a new array.</summary>
    public readonly unsafe float[] AsFloatArray()
    {
        var view = default(Py_buffer);
        if (CPython.PyObject_GetBuffer(pointer, ref view, CPython.PyBUF_C_CONTIGUOUS | CPython.PyBUF_FORMAT) != 0)
        {
            throw PythonException.FetchPending();
        }

        try
        {
            var format = Marshal.PtrToStringUTF8(view.format) ?? "B";
            if (view.itemsize != sizeof(float) || format.TrimStart('<', '=', '@') != "f")
            {
                throw new InvalidCastException($"expected a float32 buffer, got format '{format}' with {view.itemsize}-byte items");
            }

            var result = GC.AllocateUninitializedArray<float>(checked((int)(view.len / sizeof(float))));
            new ReadOnlySpan<float>((void*)view.buf, result.Length).CopyTo(result);
            return result;
        }
        finally
        {
            CPython.PyBuffer_Release(ref view);
        }
    }

    /// <summary>A reference that may be kept across work items; dispose it to release the object.</summary>
    public readonly PyHandle Keep(PythonRuntime runtime)
    {
        CPython.Py_IncRef(pointer);
        return new PyHandle(runtime, pointer);
    }

    /// <summary>Converts null, string, bool, integers, floating point, byte[], float[] (as bytes) and PyHandle.</summary>
    public static unsafe PyObject FromValue(object? value)
    {
        switch (value)
        {
            case null:
                CPython.Py_IncRef(NoneRef());
                return Own(NoneRef());
            case string s:
                return FromString(s);
            case bool b:
                return Own(CPython.PyBool_FromLong(b ? 1 : 0));
            case int or long or short or byte or uint:
                return Own(CPython.PyLong_FromLongLong(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)));
            case double or float or decimal:
                return Own(CPython.PyFloat_FromDouble(Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture)));
            case byte[] bytes:
                fixed (byte* p = bytes)
                {
                    return Own(CPython.PyBytes_FromStringAndSize(p, bytes.Length));
                }

            case float[] floats:
                fixed (float* p = floats)
                {
                    return Own(CPython.PyBytes_FromStringAndSize((byte*)p, (nint)floats.Length * sizeof(float)));
                }

            case PyHandle handle:
                var raw = handle.Pointer;
                CPython.Py_IncRef(raw);
                return Own(raw);
            default:
                throw new ArgumentException($"cannot pass a {value.GetType().Name} to Python; use strings (JSON for structures), numbers, bools, byte[] or float[]");
        }
    }

    public static unsafe PyObject FromString(string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        fixed (byte* p = bytes)
        {
            return Own(CPython.PyUnicode_FromStringAndSize(p, bytes.Length));
        }
    }

    /// <summary>str(o) without raising; used while formatting errors.</summary>
    internal static string StrOf(nint o)
    {
        using var s = Own(CPython.PyObject_Str(o), throwOnNull: false);
        if (s.IsNull)
        {
            CPython.PyErr_Clear();
            return "<unprintable>";
        }

        return s.AsString();
    }

    /// <summary>PyTuple_SetItem, which steals <paramref name="item"/> even when it fails.</summary>
    internal static void SetTupleItem(nint tuple, int index, nint item)
    {
        if (CPython.PyTuple_SetItem(tuple, index, item) != 0)
        {
            throw PythonException.FetchPending();
        }
    }

    /// <summary>Gives up ownership: the caller (usually a stealing C API) takes the reference.</summary>
    internal nint Detach()
    {
        var p = pointer;
        pointer = 0;
        return p;
    }

    public void Dispose()
    {
        if (owned && pointer != 0)
        {
            CPython.Py_DecRef(pointer);
        }

        pointer = 0;
    }
}
