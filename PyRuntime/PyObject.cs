using Python.Runtime;
using Py = Python.Runtime;

namespace Timbre.PyRuntime;

/// <summary>A Python object (through pythonnet) that lives only inside one unit of work on a Python thread.</summary>
/// <remarks>
/// A ref struct: the compiler keeps it out of fields, lambdas and async methods, so a reference can
/// neither outlive the GIL nor cross an await. To keep an object between work items use <see cref="Keep"/>.
/// </remarks>
public ref struct PyObject
{
    private Py.PyObject? value;
    private readonly bool owned;

    internal PyObject(Py.PyObject? value, bool owned)
    {
        this.value = value;
        this.owned = owned;
    }

    internal readonly Py.PyObject Value => value ?? throw new InvalidOperationException("this Python reference is empty (the end of an iterator)");

    /// <summary>True for an empty reference: what <see cref="Next"/> returns at the end.</summary>
    public readonly bool IsNull => value is null;

    public readonly bool IsNone => value is not null && value.IsNone();

    public readonly PyObject GetAttr(string name) => new(Value.GetAttr(name), owned: true);

    public readonly bool HasAttr(string name) => Value.HasAttr(name);

    /// <summary>Calls this object with .NET values converted to Python (see <see cref="FromValue"/>).</summary>
    public readonly PyObject Call(params ReadOnlySpan<object?> args)
    {
        var converted = new Py.PyObject[args.Length];
        try
        {
            for (var i = 0; i < args.Length; i++)
            {
                converted[i] = FromValue(args[i]);
            }

            return new PyObject(Value.Invoke(converted), owned: true);
        }
        finally
        {
            foreach (var c in converted)
            {
                c?.Dispose();
            }
        }
    }

    public readonly PyObject Iter() => new(Value.GetIterator(), owned: true);

    /// <summary>The next item of an iterator made by <see cref="Iter"/>, or an empty reference at the end.</summary>
    public readonly PyObject Next()
    {
        var iterator = Value as Py.PyIter ?? throw new InvalidOperationException("Next() needs an iterator from Iter()");
        return iterator.MoveNext() ? new PyObject(iterator.Current, owned: true) : default;
    }

    public readonly string AsString() => Value.As<string>();

    public readonly long AsInt64() => Value.As<long>();

    public readonly double AsDouble() => Value.As<double>();

    public readonly bool IsTrue() => Value.IsTrue();

    /// <summary>Copies a C-contiguous float32 buffer (numpy float32 array, array('f'), …) into a new array in one copy.</summary>
    /// <remarks>
    /// The element format is read through memoryview, and the buffer is requested without PyBUF_FORMAT:
    /// pythonnet 3.2.1 marshals Py_buffer.format as a .NET string and frees the exporter's own format
    /// string when it does (a double free, seen here with numpy).
    /// </remarks>
    public readonly unsafe float[] AsFloatArray()
    {
        using (var memoryViewType = Builtin("memoryview"))
        using (var memoryView = memoryViewType.Invoke(Value))
        using (var formatAttr = memoryView.GetAttr("format"))
        {
            var format = formatAttr.As<string>();
            if (format.TrimStart('<', '=', '@') != "f")
            {
                throw new InvalidCastException($"expected a float32 buffer, got format '{format}'");
            }
        }

        using var view = Value.GetBuffer(Py.PyBUF.C_CONTIGUOUS);
        var result = GC.AllocateUninitializedArray<float>(checked((int)(view.Length / sizeof(float))));
        new ReadOnlySpan<float>((void*)view.Buffer, result.Length).CopyTo(result);
        return result;
    }

    private static Py.PyObject? builtins;

    /// <summary>A builtin (memoryview, bytes, …); the module is looked up once, with the GIL held.</summary>
    private static Py.PyObject Builtin(string name) => (builtins ??= Py.Py.Import("builtins")).GetAttr(name);

    /// <summary>A reference that may be kept across work items; dispose it to release the object.</summary>
    public readonly PyHandle Keep(PythonRuntime runtime) =>
        new(runtime, Value is Py.PyIter iterator ? new Py.PyIter(iterator) : NewReference(Value));

    /// <summary>Converts null, string, bool, integers, floating point, byte[] and float[] (both as bytes) and PyHandle.</summary>
    public static Py.PyObject FromValue(object? value) => value switch
    {
        null => Py.PyObject.None,
        string s => new Py.PyString(s),
        bool b => b.ToPython(),
        int or long or short or byte or uint => new Py.PyInt(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)),
        double or float or decimal => new Py.PyFloat(Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture)),
        byte[] bytes => Bytes(bytes),
        float[] floats => Bytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan())),
        PyHandle handle => NewReference(handle.Value),
        _ => throw new ArgumentException($"cannot pass a {value.GetType().Name} to Python; use strings (JSON for structures), numbers, bools, byte[] or float[]"),
    };

    /// <summary>str(o): pythonnet's ToString() is Python's str(), which no culture affects.</summary>
    internal static string StrOf(Py.PyObject o)
    {
#pragma warning disable CA1305 // not a .NET number or date format: Python's str()
        return o.ToString() ?? "";
#pragma warning restore CA1305
    }

    /// <summary>A second, independent reference to the same Python object.</summary>
    private static Py.PyObject NewReference(Py.PyObject o) => o.ToPython();

    /// <summary>Python bytes holding <paramref name="data"/>: written into a bytearray's buffer, then frozen.</summary>
    private static unsafe Py.PyObject Bytes(ReadOnlySpan<byte> data)
    {
        using var size = new Py.PyInt(data.Length);
        using var bytearray = Builtin("bytearray");
        using var array = bytearray.Invoke(size);
        using (var view = array.GetBuffer(Py.PyBUF.SIMPLE | Py.PyBUF.WRITABLE))
        {
            data.CopyTo(new Span<byte>((void*)view.Buffer, data.Length));
        }

        using var bytes = Builtin("bytes");
        return bytes.Invoke(array);
    }

    public void Dispose()
    {
        if (owned)
        {
            value?.Dispose();
        }

        value = null;
    }
}
