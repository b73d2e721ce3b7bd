using Timbre.PyRuntime.Native;

namespace Timbre.PyRuntime;

/// <summary>A Python exception, carried into .NET with its type and formatted traceback.</summary>
public sealed class PythonException(string pythonType, string pythonMessage, string traceback, string? pythonField = null)
    : Exception($"{pythonType}: {pythonMessage}")
{
    /// <summary>The exception's <c>field</c> attribute when it has a non-empty one: the input at fault, for errors about the caller's input.</summary>
    public string? PythonField { get; } = pythonField;

    /// <summary>The exception class name, e.g. ValueError or EngineInputError.</summary>
    public string PythonType { get; } = pythonType;

    /// <summary>str(exception): what Python said, without the type.</summary>
    public string PythonMessage { get; } = pythonMessage;

    /// <summary>The traceback as traceback.format_exception prints it.</summary>
    public string PythonTraceback { get; } = traceback;

    public override string? StackTrace => PythonTraceback + Environment.NewLine + base.StackTrace;

    /// <summary>Turns the pending Python error into an exception; call only with the GIL held.</summary>
    internal static PythonException FetchPending()
    {
        CPython.PyErr_Fetch(out var type, out var value, out var tb);
        if (type == 0)
        {
            return new PythonException("SystemError", "a Python call failed without setting an error", "");
        }

        CPython.PyErr_NormalizeException(ref type, ref value, ref tb);
        try
        {
            var name = PyObject.Borrowed(type).GetAttrOrNull("__name__") ?? "Exception";
            var message = value != 0 ? PyObject.StrOf(value) : "";
            var trace = FormatTraceback(type, value, tb) ?? $"{name}: {message}";
            var field = value != 0 ? PyObject.Borrowed(value).GetAttrOrNull("field") : null;
            return new PythonException(name, message, trace, string.IsNullOrEmpty(field) || field == "None" ? null : field);
        }
        finally
        {
            CPython.Py_DecRef(type);
            if (value != 0) CPython.Py_DecRef(value);
            if (tb != 0) CPython.Py_DecRef(tb);
        }
    }

    internal static void ThrowIfPending()
    {
        if (CPython.PyErr_Occurred() != 0)
        {
            throw FetchPending();
        }
    }

    private static string? FormatTraceback(nint type, nint value, nint tb)
    {
        // Formatting must never hide the original error, so any failure here is cleared.
        using var module = PyObject.Own(CPython.PyImport_ImportModule("traceback"), throwOnNull: false);
        if (module.IsNull)
        {
            CPython.PyErr_Clear();
            return null;
        }

        using var format = PyObject.Own(CPython.PyObject_GetAttrString(module.Pointer, "format_exception"), throwOnNull: false);
        using var args = PyObject.Own(CPython.PyTuple_New(3), throwOnNull: false);
        if (format.IsNull || args.IsNull)
        {
            CPython.PyErr_Clear();
            return null;
        }

        foreach (var (i, o) in new[] { (0, type), (1, value), (2, tb) })
        {
            var item = o == 0 ? PyObject.NoneRef() : o;
            CPython.Py_IncRef(item);
            PyObject.SetTupleItem(args.Pointer, i, item);
        }

        using var lines = PyObject.Own(CPython.PyObject_Call(format.Pointer, args.Pointer, 0), throwOnNull: false);
        if (lines.IsNull)
        {
            CPython.PyErr_Clear();
            return null;
        }

        using var empty = PyObject.FromString("");
        using var join = empty.GetAttr("join");
        using var joined = join.CallWith(lines);
        return joined.AsString();
    }
}
