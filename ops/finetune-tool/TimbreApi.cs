using System.Net;
using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace Timbre.FineTune;

/// <summary>The part of Timbre's REST API a fine-tuning run uses, as TIMBRE_URL and TIMBRE_API_KEY point to it.</summary>
public sealed class TimbreApi(Uri baseUri, string? apiKey) : IDisposable
{
    private readonly HttpClient http = Create(baseUri, apiKey);

    public Uri BaseUri => baseUri;

    private static HttpClient Create(Uri baseUri, string? apiKey)
    {
        // Uploads of an hour of audio and event streams that last a training run: no overall timeout.
        var client = new HttpClient { BaseAddress = baseUri, Timeout = Timeout.InfiniteTimeSpan };
        if (!string.IsNullOrEmpty(apiKey))
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return client;
    }

    /// <summary>Uploads the recordings (and the transcripts beside them) as a new dataset; returns its JSON.</summary>
    public async Task<JsonElement> CreateDatasetAsync(string name, IReadOnlyList<Recording> recordings, IProgress<long> sent, CancellationToken ct)
    {
        using var form = new MultipartFormDataContent { { new StringContent(name), "name" } };
        var streams = new List<Stream>();
        try
        {
            foreach (var r in recordings)
            {
                var stream = new CountingStream(File.OpenRead(r.Path), sent);
                streams.Add(stream);
                form.Add(new StreamContent(stream, 1 << 20), "files", Path.GetFileName(r.Path));
                if (r.Transcript is { } text)
                {
                    form.Add(new StringContent(await File.ReadAllTextAsync(text, ct), Encoding.UTF8), "files", Path.GetFileName(text));
                }
            }

            using var response = await http.PostAsync("v1/datasets", form, ct);
            return await ReadAsync(response, ct);
        }
        finally
        {
            foreach (var s in streams)
            {
                await s.DisposeAsync();
            }
        }
    }

    public async Task<JsonElement> GetAsync(string path, CancellationToken ct)
    {
        using var response = await http.GetAsync(path, ct);
        return await ReadAsync(response, ct);
    }

    public async Task<JsonElement> PostJsonAsync(string path, object body, CancellationToken ct)
    {
        using var content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        using var response = await http.PostAsync(path, content, ct);
        return await ReadAsync(response, ct);
    }

    public async Task<JsonElement> DeleteAsync(string path, CancellationToken ct)
    {
        using var response = await http.DeleteAsync(path, ct);
        return await ReadAsync(response, ct);
    }

    /// <summary>A job's events from the start, reconnecting with Last-Event-ID when the connection drops, until the job ends or is interrupted.</summary>
    public async IAsyncEnumerable<JsonElement> EventsAsync(string jobId, [EnumeratorCancellation] CancellationToken ct)
    {
        long last = 0;
        var failures = 0;
        while (true)
        {
            var items = new List<JsonElement>();
            HttpResponseMessage? response = null;
            IAsyncEnumerator<SseItem<string>>? reader = null;
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"v1/finetune/jobs/{jobId}/events");
                if (last > 0)
                {
                    request.Headers.Add("Last-Event-ID", last.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }

                response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                if (!response.IsSuccessStatusCode)
                {
                    await ReadAsync(response, ct); // throws with the problem's detail
                }

                reader = SseParser.Create(await response.Content.ReadAsStreamAsync(ct)).EnumerateAsync(ct).GetAsyncEnumerator(ct);
                failures = 0;
            }
            catch (HttpRequestException) when (++failures < 30 && !ct.IsCancellationRequested)
            {
                response?.Dispose();
                await Task.Delay(TimeSpan.FromSeconds(2), ct); // the server restarting: try again
                continue;
            }

            var ended = false;
            try
            {
                while (true)
                {
                    bool more;
                    try
                    {
                        more = await reader.MoveNextAsync();
                    }
                    catch (Exception dropped) when (dropped is IOException or HttpRequestException && !ct.IsCancellationRequested)
                    {
                        break; // dropped mid-stream: reconnect after the last event seen
                    }

                    if (!more)
                    {
                        ended = true;
                        break;
                    }

                    var e = JsonDocument.Parse(reader.Current.Data).RootElement.Clone();
                    last = e.GetProperty("seq").GetInt64();
                    yield return e;
                }
            }
            finally
            {
                await reader.DisposeAsync();
                response.Dispose();
            }

            if (ended)
            {
                yield break;
            }

            await Task.Delay(TimeSpan.FromSeconds(1), ct);
        }
    }

    private static async Task<JsonElement> ReadAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var text = await response.Content.ReadAsStringAsync(ct);
        if (response.IsSuccessStatusCode)
        {
            return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        }

        var detail = text;
        try
        {
            var problem = JsonDocument.Parse(text).RootElement;
            detail = problem.TryGetProperty("detail", out var d) ? d.GetString() ?? text : text;
        }
        catch (JsonException)
        {
            // not a problem document: show the body as it is
        }

        throw new TimbreApiException(response.StatusCode, detail);
    }

    public void Dispose() => http.Dispose();

    /// <summary>Counts bytes as the upload reads them, for the progress bar.</summary>
    private sealed class CountingStream(Stream inner, IProgress<long> sent) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => inner.CanSeek;

        public override bool CanWrite => false;

        public override long Length => inner.Length;

        public override long Position { get => inner.Position; set => inner.Position = value; }

        public override int Read(byte[] buffer, int offset, int count) => Counted(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Counted(await inner.ReadAsync(buffer, cancellationToken));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private int Counted(int n)
        {
            sent.Report(n);
            return n;
        }
    }
}

/// <summary>One recording to upload and the transcript beside it (same name, .txt), if any.</summary>
public sealed record Recording(string Path, string? Transcript, long Bytes);

/// <summary>Timbre answered with an error; Detail is its problem detail (what to change).</summary>
public sealed class TimbreApiException(HttpStatusCode status, string detail) : Exception($"{(int)status} {status}: {detail}")
{
    public HttpStatusCode Status { get; } = status;

    public string Detail { get; } = detail;
}
