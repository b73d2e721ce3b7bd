using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Timbre.ControlPlane.Observability;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Tests;

/// <summary>Debian's redis-server, started on a free loopback port for one test class, and stopped or restarted at will.</summary>
public sealed class RedisServer : IAsyncDisposable
{
    private Process? process;

    public RedisServer()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        Port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Start();
    }

    public int Port { get; }

    public string Connection => $"127.0.0.1:{Port}";

    public void Start()
    {
        var psi = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
        {
            psi.ArgumentList.Add(a);
        }

        process = Process.Start(psi)!;
        process.BeginOutputReadLine();
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(50);
            }
        }

        Assert.Fail("redis-server did not start (ops/install-deps --test installs it)");
    }

    /// <summary>SIGKILL: Redis gone without a goodbye.</summary>
    public void Kill()
    {
        process?.Kill();
        process?.WaitForExit();
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        process?.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>Two Timbre nodes sharing a Redis: a hub stream's RequestId and cancel across nodes, and life without Redis.</summary>
public sealed class ClusterTests : IAsyncLifetime, IDisposable
{
    private const string Key = "cluster-test-key-0123456789";
    private readonly RedisServer redis = new();
    private readonly TimbreApp a = new();
    private readonly TimbreApp b = new();

    public async Task InitializeAsync()
    {
        foreach (var node in new[] { a, b })
        {
            node.Settings["Timbre:Auth:ApiKeys:0"] = Key;
            node.Settings["Timbre:Cluster:Redis"] = redis.Connection;
            await node.EnrolAsync("Ada", Key);
        }
    }

    public void Dispose()
    {
        a.Dispose();
        b.Dispose();
    }

    public async Task DisposeAsync()
    {
        a.Dispose();
        b.Dispose();
        await redis.DisposeAsync();
    }

    private static async Task<HubConnection> ConnectAsync(TimbreApp node)
    {
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(node.BaseAddress, "/hubs/speech"), o => o.AccessTokenProvider = () => Task.FromResult<string?>(Key))
            .AddMessagePackProtocol()
            .Build();
        await hub.StartAsync();
        return hub;
    }

    private static async Task<JsonElement> ReadyAsync(TimbreApp node)
    {
        using var client = node.CreateClient();
        return await client.GetFromJsonAsync<JsonElement>("/ready");
    }

    [Fact]
    public async Task A_request_id_streams_once_across_nodes_and_a_cancel_sent_to_one_node_stops_the_stream_on_the_other()
    {
        Assert.Equal("connected", (await ReadyAsync(a)).GetProperty("cluster").GetString());
        await using var onA = await ConnectAsync(a);
        await using var onB = await ConnectAsync(b);
        var request = new SpeechRequest { Text = Audio.LongText(), Voice = "ada", RequestId = "editor-7" };
        await using var running = onA.StreamAsync<AudioChunk>("StreamSpeech", request).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());

        var duplicate = await Assert.ThrowsAsync<HubException>(async () =>
        {
            await foreach (var _ in onB.StreamAsync<AudioChunk>("StreamSpeech", request))
            {
            }
        });
        Assert.Contains("already streaming on another Timbre node", duplicate.Message, StringComparison.Ordinal);

        Assert.True(await onB.InvokeAsync<bool>("CancelSpeech", "editor-7"));
        var ended = false;
        try
        {
            while (await running.MoveNextAsync())
            {
                ended |= running.Current.IsFinal;
            }
        }
        catch (HubException)
        {
        }

        Assert.False(ended, "the stream cancelled from node B ran to its end on node A");
        await SpeechHubTests.Eventually(() => a.Get<TimbreMetrics>().StreamsEnded("classic", "cancelled") == 1);
        Assert.Contains(a.Logs.Lines, l => l.Contains("Hub stream editor-7 cancelled from another node", StringComparison.Ordinal));

        // Its id is free again, on either node; a cancel for a stream that runs nowhere says so.
        var again = 0;
        await foreach (var chunk in onB.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = "Once more.", Voice = "ada", RequestId = "editor-7" }))
        {
            again++;
        }

        Assert.True(again > 1);
        Assert.False(await onA.InvokeAsync<bool>("CancelSpeech", "editor-7"));
    }

    [Fact]
    public async Task Without_redis_each_node_keeps_serving_says_so_in_ready_and_logs_it_and_comes_back_when_redis_does()
    {
        await using var onA = await ConnectAsync(a);
        redis.Kill();

        // The hub, REST and cancels on this node all keep working.
        var chunks = 0;
        await foreach (var _ in onA.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = "Redis is gone.", Voice = "ada", RequestId = "offline-1" }))
        {
            chunks++;
        }

        Assert.True(chunks > 1);
        using (var client = a.CreateClient(Key))
        using (var response = await client.PostAsJsonAsync("/v1/speech", new { text = "Still speaking.", voice = "ada" }))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.False(await onA.InvokeAsync<bool>("CancelSpeech", "nothing-running"));
        await using (var fresh = await ConnectAsync(b))
        {
            await foreach (var _ in fresh.StreamAsync<AudioChunk>("StreamSpeech", new SpeechRequest { Text = "A new connection.", Voice = "ada" }))
            {
            }
        }

        var ready = await ReadyAsync(a);
        Assert.Equal("ready", ready.GetProperty("status").GetString());
        Assert.StartsWith("Redis unreachable", ready.GetProperty("cluster").GetString(), StringComparison.Ordinal);
        Assert.Single(a.Logs.Lines, l => l.Contains("Redis (Timbre:Cluster:Redis) is unreachable", StringComparison.Ordinal));

        redis.Start();
        for (var i = 0; i < 100 && (await ReadyAsync(a)).GetProperty("cluster").GetString() != "connected"; i++)
        {
            await Task.Delay(100);
        }

        Assert.Equal("connected", (await ReadyAsync(a)).GetProperty("cluster").GetString());
    }
}

/// <summary>The per-key request limit with two nodes on one Redis: one bucket for the cluster, each node's own while Redis is away.</summary>
public sealed class ClusterLimitTests : IAsyncLifetime, IDisposable
{
    private const string Key = "cluster-limit-key-0123456789";
    private readonly RedisServer redis = new();
    private readonly TimbreApp a = new();
    private readonly TimbreApp b = new();

    public Task InitializeAsync()
    {
        foreach (var node in new[] { a, b })
        {
            node.Settings["Timbre:Auth:ApiKeys:0"] = Key;
            node.Settings["Timbre:Cluster:Redis"] = redis.Connection;
            node.Settings["Timbre:Limits:RequestsPerMinute"] = "3";
        }

        return Task.CompletedTask;
    }

    public void Dispose()
    {
        a.Dispose();
        b.Dispose();
    }

    public async Task DisposeAsync()
    {
        Dispose();
        await redis.DisposeAsync();
    }

    private static async Task<HttpResponseMessage> VoicesAsync(TimbreApp node)
    {
        using var client = node.CreateClient(Key);
        return await client.GetAsync("/v1/voices");
    }

    [Fact]
    public async Task A_keys_requests_count_against_one_bucket_on_every_node_and_each_node_counts_alone_without_redis()
    {
        Assert.Equal(HttpStatusCode.OK, (await VoicesAsync(a)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await VoicesAsync(a)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await VoicesAsync(b)).StatusCode);
        using var refused = await VoicesAsync(b);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero, refused.Headers.ToString());

        // Redis gone: node B's own bucket, untouched so far, serves; no request waits for Redis.
        redis.Kill();
        await SpeechHubTests.Eventually(() => b.Get<Timbre.ControlPlane.Cluster.ClusterLink>().State != "connected");
        Assert.Equal(HttpStatusCode.OK, (await VoicesAsync(b)).StatusCode);
    }
}
