using System.Reflection;
using System.Runtime.InteropServices;

namespace Timbre.PyRuntime.Native;

/// <summary>Loads libpython with RTLD_NOW | RTLD_GLOBAL and points every CPython import at it.</summary>
/// <remarks>
/// .NET's own loader opens libraries RTLD_LOCAL, which hides libpython's symbols from the
/// extension modules Python later dlopens itself (numpy, torch): they then fail with undefined
/// PyExc_* symbols. Opening it ourselves, globally, and handing that handle to the resolver avoids it.
/// </remarks>
internal static partial class LibPython
{
    /// <summary>The logical library name every CPython import in this assembly uses.</summary>
    public const string Name = "python";

    private const int RTLD_NOW = 0x2;
    private const int RTLD_GLOBAL = 0x100;
    private static readonly Lock Gate = new();
    private static nint handle;

    public static nint Handle => handle;

    public static void Load(string path)
    {
        lock (Gate)
        {
            if (handle != 0)
            {
                return;
            }

            var h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
            if (h == 0)
            {
                throw new DllNotFoundException($"Could not load {path}: {Marshal.PtrToStringUTF8(dlerror())}");
            }

            handle = h;
            NativeLibrary.SetDllImportResolver(typeof(LibPython).Assembly, Resolve);
        }
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName == Name ? handle : 0;

    /// <summary>Address of an exported data symbol such as _Py_NoneStruct.</summary>
    public static nint Export(string symbol) => NativeLibrary.GetExport(handle, symbol);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint dlopen(string fileName, int flags);

    [LibraryImport("libc")]
    private static partial nint dlerror();
}
