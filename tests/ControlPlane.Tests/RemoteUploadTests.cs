using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Tests;

/// <summary>
/// A front's RemoteEngine sending a fine-tuned version to a worker, against a node on loopback that keeps the
/// node API's contract (409 with <c>missing</c>, then PUT /v1/cluster/models/{digest}) but takes its uploads
/// slowly or not at all, which a real worker on loopback never does.
/// </summary>
public sealed class RemoteUploadTests : IAsyncLifetime
{
    private readonly DirectoryInfo version = Directory.CreateTempSubdirectory("timbre-version-");
    private const string Digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private WebApplication? node;
    private int puts;
    private bool held;
    private TimeSpan readDelay;
    private bool neverRead;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(o => o.Limits.MaxRequestBodySize = null).UseUrls("http://127.0.0.1:0");
        node = builder.Build();
        node.MapPost("/v1/cluster/speech", async (HttpContext http) =>
        {
            if (!Volatile.Read(ref held))
            {
                return Results.Json(new { detail = "lacks it", missing = new[] { Digest } }, statusCode: 409);
            }

            http.Response.ContentType = "audio/pcm";
            await http.Response.Body.WriteAsync(new byte[9600]);
            return Results.Empty;
        });
        node.MapPut("/v1/cluster/models/{digest}", async (string digest, HttpContext http) =>
        {
            Interlocked.Increment(ref puts);
            if (neverRead)
            {
                await Task.Delay(Timeout.Infinite, http.RequestAborted);
            }

            await Task.Delay(readDelay, http.RequestAborted);
            await http.Request.Body.CopyToAsync(Stream.Null, http.RequestAborted);
            Volatile.Write(ref held, true);
            return Results.NoContent();
        });
        await node.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (node is not null)
        {
            await node.DisposeAsync();
        }

        version.Delete(recursive: true);
    }

    private RemoteEngine Engine(HttpClient http) => new("workers", new RemoteEngineOptions
    {
        Kind = RemoteEngineOptions.Timbre,
        Endpoints = [node!.Urls.Single()],
        Model = "classic",
        Concurrency = 8,
        FirstAudioTimeoutSeconds = 1,
    }, http, NullLogger.Instance);

    private static async Task<int> ReadAllAsync(RemoteEngine engine, Dictionary<string, string> files)
    {
        var samples = 0;
        await foreach (var chunk in engine.StreamAsync("{}", files, CancellationToken.None))
        {
            samples += chunk.Length;
        }

        return samples;
    }

    [Fact]
    public async Task Requests_arriving_together_share_one_upload_that_outlasts_the_first_audio_timeout()
    {
        await File.WriteAllBytesAsync(Path.Combine(version.FullName, "model.bin"), new byte[1 << 20]);
        readDelay = TimeSpan.FromSeconds(2);
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        var engine = Engine(http);
        var files = new Dictionary<string, string> { [Digest] = version.FullName };

        // The worker reads the version only after 2 s, twice the first-audio timeout: the clock stops meanwhile.
        var served = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => ReadAllAsync(engine, files)));
        Assert.All(served, n => Assert.Equal(4800, n));
        Assert.Equal(1, puts);
    }

    [Fact]
    public async Task An_upload_the_worker_stops_taking_fails_that_worker_within_the_stall_limit()
    {
        // Larger than every buffer between the two (loopback's, Kestrel's), so that the writes block.
        await File.WriteAllBytesAsync(Path.Combine(version.FullName, "model.bin"), new byte[64 << 20]);
        neverRead = true;
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        var engine = Engine(http);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failed = await Assert.ThrowsAsync<EngineUnavailableException>(() => ReadAllAsync(engine, new() { [Digest] = version.FullName }));
        Assert.Contains("stalled: the worker took no bytes for 1 s", failed.Message, StringComparison.Ordinal);
        Assert.InRange(clock.Elapsed.TotalSeconds, 1, 30);
        Assert.Equal(1, puts);
    }
}
