using Py = Python.Runtime;

namespace Timbre.PyRuntime;

/// <summary>A Python exception, carried into .NET with its type and formatted traceback.</summary>
/// <remarks>Made from pythonnet's exception on the Python thread (formatting needs the GIL), so callers get plain .NET data.</remarks>
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

    /// <summary>Reads pythonnet's exception into plain data; call only with the GIL held.</summary>
    internal static PythonException From(Py.PythonException e)
    {
        e.Normalize();
        var name = e.Type.Name;
        var message = (e.Value is { } v ? PyObject.StrOf(v) : "");
        string trace;
        try
        {
            trace = e.Format();
        }
        catch (Py.PythonException)
        {
            // Formatting must never hide the original error.
            trace = $"{name}: {message}";
        }

        string? field = null;
        if (e.Value is { } value && value.HasAttr("field"))
        {
            using var f = value.GetAttr("field");
            field = f.IsNone() ? null : PyObject.StrOf(f);
        }

        return new PythonException(name, message, trace, string.IsNullOrEmpty(field) ? null : field);
    }
}
