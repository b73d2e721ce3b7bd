using System.Diagnostics;
using System.Formats.Tar;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Timbre.ControlPlane.Engines;

/// <summary>
/// What only Timbre worker nodes (kind timbre) need: a worker names the samples it lacks (409 with
/// <c>missing</c>), and the front sends each before asking again (README, "Scaling out", the node API). A
/// voice's fine-tuned version goes as a tar stream of its folder, once per worker, however many requests
/// ask for it meanwhile.
/// </summary>
public sealed partial class RemoteEngine
{
    private readonly Dictionary<(Endpoint Endpoint, string Digest), SharedUpload> uploads = [];

    /// <summary>The samples a worker's 409 names as missing.</summary>
    private static async Task<List<string>> MissingAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            using var json = JsonDocument.Parse(text);
            if (json.RootElement.TryGetProperty("missing", out var missing) && missing.ValueKind == JsonValueKind.Array)
            {
                return [.. missing.EnumerateArray().Where(m => m.ValueKind == JsonValueKind.String).Select(m => m.GetString()!)];
            }
        }
        catch (JsonException)
        {
        }

        throw new EndpointFailedException($"HTTP 409 without the list of missing samples: {(text.Length > 300 ? text[..300] : text)}");
    }

    /// <summary>
    /// Sends what the worker lacks: each sample with PUT /v1/cluster/samples/{sha256} within the wait for first
    /// audio, and a version folder with PUT /v1/cluster/models/{digest}. A version may be gigabytes, so the
    /// first-audio clock stops while it goes and starts again after; the upload fails instead when the worker
    /// takes no bytes for FirstAudioTimeoutSeconds.
    /// </summary>
    private async Task UploadAsync(Endpoint endpoint, List<string> missing, IReadOnlyDictionary<string, string> files, CancellationTokenSource firstAudio, CancellationToken cancellationToken)
    {
        foreach (var sha in missing)
        {
            if (!files.TryGetValue(sha, out var path))
            {
                throw new EndpointFailedException($"it asked for sample {sha}, which this request did not name");
            }

            if (Directory.Exists(path))
            {
                firstAudio.CancelAfter(Timeout.InfiniteTimeSpan);
                await SendModelAsync(endpoint, sha, path, cancellationToken);
                firstAudio.CancelAfter(TimeSpan.FromSeconds(Options.FirstAudioTimeoutSeconds));
                continue;
            }

            await using var file = File.OpenRead(path);
            using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(endpoint.Url, $"v1/cluster/samples/{sha}"))
            {
                Content = new StreamContent(file),
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("audio/wav");
            await PutAsync(request, $"sending sample {sha[..12]}", firstAudio.Token);
            LogSampleSent(logger, Name, endpoint.Text, sha);
        }
    }

    private async Task PutAsync(HttpRequestMessage request, string what, CancellationToken cancellationToken)
    {
        Authorise(request);
        using var response = await http.SendAsync(request, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            var (message, _) = ErrorOf(await response.Content.ReadAsStringAsync(cancellationToken));
            throw new EndpointFailedException($"{what} failed: HTTP {(int)response.StatusCode}{(message is null ? "" : $": {message}")}");
        }
    }

    /// <summary>
    /// Waits for the version's upload to the endpoint, starting it unless another request already has. The
    /// upload stops when every request waiting for it has left.
    /// </summary>
    private async Task SendModelAsync(Endpoint endpoint, string digest, string folder, CancellationToken cancellationToken)
    {
        SharedUpload shared;
        lock (uploads)
        {
            if (!uploads.TryGetValue((endpoint, digest), out shared!) || shared.Stop.IsCancellationRequested)
            {
                var started = new SharedUpload();
                started.Task = Task.Run(() => PutModelAsync(endpoint, digest, folder, started.Stop.Token), CancellationToken.None);
                _ = started.Task.ContinueWith(
                    _ =>
                    {
                        lock (uploads)
                        {
                            if (uploads.TryGetValue((endpoint, digest), out var current) && current == started)
                            {
                                uploads.Remove((endpoint, digest));
                            }
                        }
                    },
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
                uploads[(endpoint, digest)] = started;
                shared = started;
            }

            shared.Waiters++;
        }

        try
        {
            await shared.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            lock (uploads)
            {
                if (--shared.Waiters == 0 && !shared.Task.IsCompleted)
                {
                    shared.Stop.Cancel();
                }
            }
        }
    }

    private async Task PutModelAsync(Endpoint endpoint, string digest, string folder, CancellationToken cancellationToken)
    {
        var stall = TimeSpan.FromSeconds(Options.FirstAudioTimeoutSeconds);
        // HttpClient ignores a token given to one write of a request's body: a stalled write ends by cancelling the request.
        using var stalled = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var content = new FolderTar(folder, stall, stalled);
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(endpoint.Url, $"v1/cluster/models/{digest}")) { Content = content };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
        var clock = Stopwatch.StartNew();
        try
        {
            await PutAsync(request, $"sending fine-tuned version {digest[..12]}", stalled.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException && stalled.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new EndpointFailedException($"sending fine-tuned version {digest[..12]} stalled: the worker took no bytes for {stall.TotalSeconds:0.#} s (FirstAudioTimeoutSeconds)");
        }

        LogModelSent(logger, Name, endpoint.Text, digest, content.Bytes / 1e6, clock.Elapsed.TotalSeconds);
    }

    private sealed class SharedUpload
    {
        public Task Task { get; set; } = Task.CompletedTask;

        public CancellationTokenSource Stop { get; } = new();

        public int Waiters { get; set; }
    }

    /// <summary>
    /// A version folder's regular files as a PAX tar stream, written as it is sent (no length known). A write
    /// the worker does not take within <paramref name="stall"/> cancels <paramref name="request"/>.
    /// </summary>
    private sealed class FolderTar(string folder, TimeSpan stall, CancellationTokenSource request) : HttpContent
    {
        private long bytes;

        public long Bytes => Interlocked.Read(ref bytes);

        private void StartClock() => request.CancelAfter(stall);

        private void StopClock() => request.CancelAfter(Timeout.InfiniteTimeSpan);

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            var guarded = new GuardedStream(stream, this);
            await using var tar = new TarWriter(guarded, TarEntryFormat.Pax, leaveOpen: true);
            var names = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(folder, f).Replace(Path.DirectorySeparatorChar, '/'))
                .Order(StringComparer.Ordinal);
            foreach (var name in names)
            {
                // A regular file whatever it is on disk (a link is sent as what it points to): the worker takes nothing else.
                await using var data = File.OpenRead(Path.Combine(folder, name));
                await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = data }, cancellationToken);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        /// <summary>Counts what is written, and runs the stall clock while each write waits.</summary>
        private sealed class GuardedStream(Stream inner, FolderTar owner) : Stream
        {
            public override bool CanRead => false;

            public override bool CanSeek => false;

            public override bool CanWrite => true;

            public override long Length => throw new NotSupportedException();

            public override long Position { get => owner.Bytes; set => throw new NotSupportedException(); }

            public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            {
                owner.StartClock();
                try
                {
                    await inner.WriteAsync(buffer, cancellationToken);
                }
                finally
                {
                    owner.StopClock();
                }

                Interlocked.Add(ref owner.bytes, buffer.Length);
            }

            public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
                WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

            public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

            public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

            public override void Flush() => inner.Flush();

            public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

            public override void SetLength(long value) => throw new NotSupportedException();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Remote engine {Engine}: sent sample {Sha256} to {Endpoint}, which lacked it")]
    private static partial void LogSampleSent(ILogger logger, string engine, string endpoint, string sha256);

    [LoggerMessage(Level = LogLevel.Information, Message = "Remote engine {Engine}: sent fine-tuned version {Digest} to {Endpoint}, which lacked it ({Megabytes:0.0} MB in {Seconds:0.0} s)")]
    private static partial void LogModelSent(ILogger logger, string engine, string endpoint, string digest, double megabytes, double seconds);
}
