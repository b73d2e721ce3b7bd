using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Timbre.ControlPlane.Engines;

/// <summary>The readers of a remote engine's response body: raw PCM, a streamed WAV, or OpenAI speech SSE events.</summary>
public sealed partial class RemoteEngine
{
    /// <summary>One upstream response being read: raw PCM (audio/pcm, audio/wav) or OpenAI speech SSE events.</summary>
    private abstract class UpstreamStream(RemoteEngine owner, Endpoint endpoint, HttpResponseMessage response) : IAsyncDisposable
    {
        private float[]? first;
        private int disposed;

        public Endpoint Endpoint => endpoint;

        public static UpstreamStream Of(RemoteEngine owner, Endpoint endpoint, HttpResponseMessage response, Stream body)
        {
            var type = response.Content.Headers.ContentType?.MediaType ?? "";
            return type.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase)
                ? new SseStream(owner, endpoint, response, body)
                : new PcmStream(owner, endpoint, response, body, wav: type.Contains("wav", StringComparison.OrdinalIgnoreCase));
        }

        /// <summary>Reads until the first audio, so that an endpoint that answers but sends nothing counts as failed.</summary>
        public async Task ReadFirstAsync(CancellationToken cancellationToken)
        {
            first = await NextAsync(cancellationToken) ?? throw new EndpointFailedException("the response ended without audio");
        }

        /// <summary>The next chunk, null at the end.</summary>
        public async Task<float[]?> ReadAsync(CancellationToken cancellationToken)
        {
            if (first is { } f)
            {
                first = null;
                return f;
            }

            try
            {
                return await NextAsync(cancellationToken);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or EndpointFailedException)
            {
                endpoint.LastError = e.Message;
                throw new EngineFailedException($"The remote engine '{owner.Name}' stopped in the middle of the audio ({endpoint.Url}: {e.Message}).", e);
            }
        }

        protected abstract Task<float[]?> NextAsync(CancellationToken cancellationToken);

        public virtual ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0)
            {
                // Disposing an unfinished response closes its connection: the server sees the request aborted.
                response.Dispose();
            }

            return ValueTask.CompletedTask;
        }
    }

    /// <summary>s16le mono PCM as the bytes arrive, with a WAV header skipped when the server sends one.</summary>
    private sealed class PcmStream(RemoteEngine owner, Endpoint endpoint, HttpResponseMessage response, Stream body, bool wav)
        : UpstreamStream(owner, endpoint, response)
    {
        private readonly byte[] buffer = new byte[16 * 1024];
        private int carried;
        private bool headerSkipped = !wav;

        protected override async Task<float[]?> NextAsync(CancellationToken cancellationToken)
        {
            if (!headerSkipped)
            {
                await SkipWavHeaderAsync(cancellationToken);
            }

            while (true)
            {
                var n = await body.ReadAsync(buffer.AsMemory(carried), cancellationToken);
                if (n == 0)
                {
                    return null;
                }

                var available = carried + n;
                var whole = available & ~1;
                if (whole == 0)
                {
                    carried = available;
                    continue;
                }

                var samples = new float[whole / 2];
                for (var i = 0; i < samples.Length; i++)
                {
                    samples[i] = BinaryPrimitives.ReadInt16LittleEndian(buffer.AsSpan(2 * i)) / 32768f;
                }

                carried = available - whole;
                if (carried > 0)
                {
                    buffer[0] = buffer[whole];
                }

                return samples;
            }
        }

        /// <summary>RIFF chunks up to and including the "data" chunk's header; a streamed WAV gives no sizes to trust.</summary>
        private async Task SkipWavHeaderAsync(CancellationToken cancellationToken)
        {
            var header = new byte[12];
            await body.ReadExactlyAsync(header, cancellationToken);
            if (!header.AsSpan(0, 4).SequenceEqual("RIFF"u8) || !header.AsSpan(8, 4).SequenceEqual("WAVE"u8))
            {
                throw new EndpointFailedException("the response says audio/wav but is not a WAV stream");
            }

            var chunk = new byte[8];
            while (true)
            {
                await body.ReadExactlyAsync(chunk, cancellationToken);
                if (chunk.AsSpan(0, 4).SequenceEqual("data"u8))
                {
                    break;
                }

                var size = BinaryPrimitives.ReadUInt32LittleEndian(chunk.AsSpan(4));
                if (size > 1 << 20)
                {
                    throw new EndpointFailedException("the WAV stream's header is malformed");
                }

                var skip = new byte[size + (size & 1)];
                await body.ReadExactlyAsync(skip, cancellationToken);
            }

            headerSkipped = true;
        }
    }

    /// <summary>OpenAI speech SSE: speech.audio.delta (base64 PCM), speech.audio.done, speech.audio.error.</summary>
    private sealed class SseStream(RemoteEngine owner, Endpoint endpoint, HttpResponseMessage response, Stream body)
        : UpstreamStream(owner, endpoint, response)
    {
        private readonly StreamReader reader = new(body, Encoding.UTF8);
        private bool done;

        protected override async Task<float[]?> NextAsync(CancellationToken cancellationToken)
        {
            var data = new StringBuilder();
            while (!done)
            {
                var line = await reader.ReadLineAsync(cancellationToken);
                if (line is null)
                {
                    throw new EndpointFailedException("the event stream ended before speech.audio.done");
                }

                if (line.StartsWith("data:", StringComparison.Ordinal))
                {
                    data.Append(line.AsSpan(5).TrimStart());
                    continue;
                }

                if (line.Length > 0 || data.Length == 0)
                {
                    continue;
                }

                var samples = Event(data.ToString());
                data.Clear();
                if (samples is { Length: > 0 })
                {
                    return samples;
                }
            }

            return null;
        }

        private float[]? Event(string data)
        {
            using var json = JsonDocument.Parse(data);
            var root = json.RootElement;
            var type = root.TryGetProperty("type", out var t) ? t.GetString() : null;
            switch (type)
            {
                case "speech.audio.delta":
                    // OpenAI names the field "audio"; some vLLM-Omni versions "delta".
                    var encoded = root.TryGetProperty("audio", out var a) ? a.GetString() : root.TryGetProperty("delta", out var d) ? d.GetString() : null;
                    var bytes = Convert.FromBase64String(encoded ?? "");
                    var samples = new float[bytes.Length / 2];
                    for (var i = 0; i < samples.Length; i++)
                    {
                        samples[i] = BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(2 * i)) / 32768f;
                    }

                    return samples;
                case "speech.audio.done":
                    done = true;
                    return null;
                case "speech.audio.error":
                    var message = root.TryGetProperty("error", out var e) && e.TryGetProperty("message", out var m) ? m.GetString() : data;
                    throw new EndpointFailedException($"the server reported an error: {message}");
                default:
                    return null;
            }
        }

        public override ValueTask DisposeAsync()
        {
            reader.Dispose();
            return base.DisposeAsync();
        }
    }
}
