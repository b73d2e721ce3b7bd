using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Timbre.ControlPlane.Tests;

/// <summary>The real ControlPlane (real embedded Python, real classic engine) on Kestrel loopback, over its own empty library.</summary>
public sealed class TimbreApp : WebApplicationFactory<Program>
{
    public TimbreApp() => UseKestrel(0);

    public string DataDirectory { get; } = Directory.CreateTempSubdirectory("timbre-test-").FullName;

    /// <summary>Every log line the server wrote, at every level, in order.</summary>
    public LogCapture Logs { get; } = new();

    /// <summary>The server's address on loopback; starts it on first use.</summary>
    public Uri BaseAddress
    {
        get
        {
            StartServer();
            return ClientOptions.BaseAddress;
        }
    }

    public Dictionary<string, string?> Settings { get; } = [];

    /// <summary>
    /// When set, the kernel send buffer of every connection the server accepts (Linux hands the listening
    /// socket's size to them). Loopback otherwise grows it to megabytes, which a test of a client that stops
    /// reading must fill with seconds of synthesis before the server's writes block.
    /// </summary>
    public int? SendBufferBytes { get; set; }

    protected override void ConfigureWebHost(Microsoft.AspNetCore.Hosting.IWebHostBuilder builder)
    {
        builder.UseSetting("Timbre:DataDirectory", DataDirectory);
        builder.ConfigureAppConfiguration((_, c) => c.AddInMemoryCollection(Settings));
        builder.ConfigureLogging(l => l.SetMinimumLevel(LogLevel.Trace).AddFilter(_ => true).AddProvider(Logs));
        if (SendBufferBytes is { } bytes)
        {
            builder.ConfigureServices(s => s.Configure<SocketTransportOptions>(o => o.CreateBoundListenSocket = endpoint =>
            {
                var socket = SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
                socket.SendBufferSize = bytes;
                return socket;
            }));
        }
    }

    /// <summary>
    /// Enrols an espeak-ng reference speaker as <paramref name="name"/> through the real upload endpoint, with
    /// its transcript, as the dashboard's recorder sends it. (Recognising a missing transcript costs seconds of
    /// CPU per voice; EnrolmentTests covers it.)
    /// </summary>
    public async Task<string> EnrolAsync(string name, string? key = null)
    {
        using var client = key is null ? CreateClient() : CreateClient(key);
        using var form = new MultipartFormDataContent { { new StringContent(name), "name" } };
        var file = new ByteArrayContent(Audio.Espeak(Audio.Reference));
        file.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("audio/wav");
        form.Add(file, "files", "ref.wav");
        form.Add(new StringContent(Audio.Reference), "transcripts");
        using var response = await client.PostAsync("/v1/voices", form);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        var created = await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<System.Text.Json.JsonElement>(response.Content);
        return created.GetProperty("id").GetString()!;
    }

    /// <summary>Fails with the lines themselves when the server logged anything at Error or Critical.</summary>
    public void AssertNoErrorsLogged()
    {
        var errors = Logs.Lines.Where(l => l.StartsWith("Error ", StringComparison.Ordinal) || l.StartsWith("Critical ", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));
    }

    /// <summary>A service of the running server.</summary>
    public T Get<T>()
        where T : notnull => Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<T>(Services);

    /// <summary>An HTTP client that sends <paramref name="key"/> as a bearer token.</summary>
    public HttpClient CreateClient(string key)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    /// <summary>Every file under the library with its size and content hash: equal before and after means untouched.</summary>
    /// <remarks>The job database and the generation log (timbre.db, provenance.db and their WALs) are left out: SQLite writes them as it likes, and their tests read them through the API.</remarks>
    public SortedDictionary<string, string> Snapshot()
    {
        // A server writes its own files when it starts (provenance.key): the snapshot is of a running one.
        StartServer();
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in Directory.EnumerateFiles(DataDirectory, "*", SearchOption.AllDirectories))
        {
            if (Path.GetFileName(f).StartsWith("timbre.db", StringComparison.Ordinal) || Path.GetFileName(f).StartsWith("provenance.db", StringComparison.Ordinal))
            {
                continue;
            }

            var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)));
            result[Path.GetRelativePath(DataDirectory, f)] = hash;
        }

        return result;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Audio made in the test by Debian's synthesisers, and measurements of audio by the tools beside it.</summary>
public static class Audio
{
    /// <summary>A reference speaker spoken by espeak-ng, a different synthesiser from the engine's flite.</summary>
    public static byte[] Espeak(string text, string voice = "en-us+f3")
    {
        var path = Path.Combine(Path.GetTempPath(), $"ref-{Guid.NewGuid():n}.wav");
        Run("espeak-ng", "-v", voice, "-w", path, text);
        try
        {
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A long text: many sentences, so synthesis lasts well beyond the first chunk.</summary>
    public static string LongText(int sentences = 40) => string.Join(" ", Enumerable.Range(1, sentences).Select(i =>
        $"This is sentence number {i} of a long text that keeps the engine busy for a while."));

    /// <summary>16-bit mono 24 kHz PCM (what pcm responses and the hub carry) as a WAV file.</summary>
    public static byte[] Wav16(byte[] pcm)
    {
        using var buffer = new MemoryStream();
        using (var writer = new NAudio.Wave.WaveFileWriter(buffer, new NAudio.Wave.WaveFormat(24000, 16, 1)))
        {
            writer.Write(pcm, 0, pcm.Length);
        }

        return buffer.ToArray();
    }

    /// <summary>The same encoded audio in another container (ffmpeg, stream copy).</summary>
    public static byte[] Remux(byte[] audio, string extension)
    {
        var source = Path.Combine(Path.GetTempPath(), $"in-{Guid.NewGuid():n}");
        var target = Path.Combine(Path.GetTempPath(), $"out-{Guid.NewGuid():n}.{extension}");
        File.WriteAllBytes(source, audio);
        try
        {
            Run("ffmpeg", "-nostdin", "-v", "error", "-i", source, "-c:a", "copy", "-y", target);
            return File.ReadAllBytes(target);
        }
        finally
        {
            File.Delete(source);
            File.Delete(target);
        }
    }

    public const string Reference =
        "The small pup gnawed a hole in the sock. The fish twisted and turned on the bent hook. Press the pants and sew a button on the vest.";

    /// <summary>Median F0 of a WAV file, by the engine's YIN tracker (itself tested against pure tones).</summary>
    public static double MedianPitch(byte[] wav)
    {
        var path = Path.Combine(Path.GetTempPath(), $"pitch-{Guid.NewGuid():n}.wav");
        File.WriteAllBytes(path, wav);
        try
        {
            var python = Path.Combine(AppContext.BaseDirectory, "python");
            var output = Run("/usr/bin/python3", "-c",
                "import sys, soundfile as sf; sys.path.insert(0, sys.argv[1]);" +
                "from timbre.engines.classic import analysis as a; x, sr = sf.read(sys.argv[2]);" +
                "print(a.pitch_stats(a.yin_pitch(x.mean(axis=1) if x.ndim > 1 else x, sr)).median_hz)",
                python, path);
            return double.Parse(output.Trim(), CultureInfo.InvariantCulture);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static string Run(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0 ? output : throw new InvalidOperationException($"{program} failed: {error}");
    }
}

/// <summary>A parsed 16-bit PCM WAV.</summary>
public sealed record Wav(int SampleRate, int Channels, int BitsPerSample, int DataBytes)
{
    public double Seconds => DataBytes / (double)(SampleRate * Channels * BitsPerSample / 8);

    public static Wav Parse(byte[] bytes, bool streamed = false)
    {
        Assert.True(bytes.Length >= 44, "shorter than a WAV header");
        Assert.Equal("RIFF", System.Text.Encoding.ASCII.GetString(bytes, 0, 4));
        Assert.Equal("WAVE", System.Text.Encoding.ASCII.GetString(bytes, 8, 4));
        Assert.Equal("data", System.Text.Encoding.ASCII.GetString(bytes, 36, 4));
        var declared = BitConverter.ToUInt32(bytes, 40);
        if (!streamed)
        {
            Assert.Equal((uint)(bytes.Length - 44), declared);
        }

        return new Wav(BitConverter.ToInt32(bytes, 24), BitConverter.ToInt16(bytes, 22), BitConverter.ToInt16(bytes, 34), bytes.Length - 44);
    }
}

/// <summary>Collects every log line of the server under test, so tests can check order and content.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly List<string> lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (lines)
            {
                return lines.ToList();
            }
        }
    }

    /// <summary>Adds a line from the test itself, so the test's events and the server's share one order.</summary>
    public void Mark(string line)
    {
        lock (lines)
        {
            lines.Add(line);
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var structured = state is IEnumerable<KeyValuePair<string, object?>> values ? string.Join(" ", values.Select(v => $"{v.Key}={v.Value}")) : "";
            owner.Mark($"{logLevel} {category}: {formatter(state, exception)} | {structured} {exception}");
        }
    }
}
