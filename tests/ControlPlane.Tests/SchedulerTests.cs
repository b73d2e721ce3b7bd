using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Observability;
using Timbre.ControlPlane.Speech;

namespace Timbre.ControlPlane.Tests;

/// <summary>The speech scheduler alone (fairness, bounds, drain) and through the real server (429, disconnects).</summary>
public sealed class SchedulerTests
{
    private static SpeechScheduler Scheduler(int slots, int queue)
    {
        var options = new TimbreOptions { Speech = { QueueLength = queue } };
        options.Speech.Concurrency["classic"] = slots;
        return new SpeechScheduler(Options.Create(options), new TimbreMetrics());
    }

    [Fact]
    public async Task A_freed_slot_goes_to_clients_in_turn_not_in_arrival_order()
    {
        var scheduler = Scheduler(slots: 1, queue: 10);
        var running = await scheduler.EnterAsync("classic", "a", 10, default);
        var admitted = new List<string>();
        var waits = new List<Task>();
        foreach (var (client, name) in new[] { ("a", "a2"), ("a", "a3"), ("a", "a4"), ("b", "b1") })
        {
            var wait = scheduler.EnterAsync("classic", client, 10, default).AsTask();
            waits.Add(wait.ContinueWith(async t =>
            {
                lock (admitted)
                {
                    admitted.Add(name);
                }

                // Each admitted request finishes at once and frees its slot for the next.
                (await t).Dispose();
            }, TaskScheduler.Default).Unwrap());
        }

        Assert.Equal(4, scheduler.Waiting("classic"));
        running.Dispose();
        await Task.WhenAll(waits);
        // a sent three before b sent one, yet b is served second: one client cannot starve another.
        Assert.Equal(["a2", "b1", "a3", "a4"], admitted);
    }

    [Fact]
    public async Task A_full_queue_refuses_at_once_with_a_retry_time()
    {
        var scheduler = Scheduler(slots: 1, queue: 1);
        using var running = await scheduler.EnterAsync("classic", "a", 10, default);
        var waiting = scheduler.EnterAsync("classic", "b", 10, default);
        var refused = await Assert.ThrowsAsync<SpeechRejectedException>(async () => await scheduler.EnterAsync("classic", "c", 10, default));
        Assert.Equal(RejectionReason.QueueFull, refused.Reason);
        Assert.True(refused.RetryAfter >= TimeSpan.FromSeconds(1));
        Assert.False(waiting.IsCompleted);
    }

    [Fact]
    public async Task A_cancelled_waiter_leaves_the_queue_and_the_next_one_gets_the_slot()
    {
        var scheduler = Scheduler(slots: 1, queue: 5);
        var running = await scheduler.EnterAsync("classic", "a", 10, default);
        using var cts = new CancellationTokenSource();
        var cancelled = scheduler.EnterAsync("classic", "b", 10, cts.Token).AsTask();
        var next = scheduler.EnterAsync("classic", "c", 10, default).AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(1, scheduler.Waiting("classic"));
        running.Dispose();
        using var lease = await next;
        Assert.Equal(1, scheduler.RunningOn("classic"));
    }

    [Fact]
    public async Task Draining_refuses_waiting_and_new_requests()
    {
        var scheduler = Scheduler(slots: 1, queue: 5);
        using var running = await scheduler.EnterAsync("classic", "a", 10, default);
        var waiting = scheduler.EnterAsync("classic", "b", 10, default).AsTask();
        scheduler.BeginDrain();
        Assert.Equal(RejectionReason.Draining, (await Assert.ThrowsAsync<SpeechRejectedException>(() => waiting)).Reason);
        Assert.Equal(RejectionReason.Draining, (await Assert.ThrowsAsync<SpeechRejectedException>(async () => await scheduler.EnterAsync("classic", "c", 10, default))).Reason);
    }

    [Fact]
    public async Task Overload_through_http_gives_429_with_Retry_After_and_the_queued_request_still_completes()
    {
        using var app = new TimbreApp();
        app.Settings["Timbre:Speech:Concurrency:classic"] = "1";
        app.Settings["Timbre:Speech:QueueLength"] = "1";
        await app.EnrolAsync("Ada");
        using var client = app.CreateClient();
        var scheduler = app.Get<SpeechScheduler>();

        // The first request holds the only slot: its response is open and unread.
        using var holding = await client.SendAsync(Speech(Audio.LongText(), stream: true), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, holding.StatusCode);
        var queued = client.SendAsync(Speech("Queued behind the first.", stream: false));
        await SpeechHubTests.Eventually(() => scheduler.Waiting("classic") == 1);

        using var refused = await client.SendAsync(Speech("One too many.", stream: false));
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.True(refused.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        var problem = await refused.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("busy", problem.GetProperty("detail").GetString()!, StringComparison.Ordinal);

        holding.Dispose();
        using var served = await queued;
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.True(Wav.Parse(await served.Content.ReadAsByteArrayAsync()).Seconds > 0.5);
        Assert.Contains("timbre_rejections_total{reason=\"queue_full\"} 1", await client.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_that_hangs_up_stops_its_engine_work_and_frees_its_slot()
    {
        using var app = new TimbreApp();
        await app.EnrolAsync("Ada");
        using var client = app.CreateClient();
        var metrics = app.Get<TimbreMetrics>();
        using (var response = await client.SendAsync(Speech(Audio.LongText(), stream: true), HttpCompletionOption.ResponseHeadersRead))
        {
            var body = await response.Content.ReadAsStreamAsync();
            Assert.True(await body.ReadAsync(new byte[4096]) > 0);
        }

        await SpeechHubTests.Eventually(() => metrics.StreamsEnded("classic", "cancelled") == 1);
        Assert.Equal(0, app.Get<EngineHost>().ActiveStreams);
        Assert.Equal(0, app.Get<SpeechScheduler>().RunningOn("classic"));
        Assert.Equal(0, metrics.StreamsEnded("classic", "completed"));
    }

    [Fact]
    public async Task A_request_past_its_timeout_is_stopped_mid_stream()
    {
        using var app = new TimbreApp();
        // Sixty sentences take the engine more than ten seconds; the limit is three, past the first audio
        // even on a loaded machine.
        app.Settings["Timbre:Speech:RequestTimeoutSeconds"] = "3";
        await app.EnrolAsync("Ada");
        using var client = app.CreateClient();
        using var response = await client.SendAsync(Speech(Audio.LongText(60), stream: true), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = new MemoryStream();
        // The server stops the body mid-way; the client sees a response that ended prematurely.
        await Assert.ThrowsAsync<HttpRequestException>(() => response.Content.CopyToAsync(received));
        var metrics = app.Get<TimbreMetrics>();
        await SpeechHubTests.Eventually(() => metrics.StreamsEnded("classic", "timeout") == 1);
        Assert.Equal(0, app.Get<SpeechScheduler>().RunningOn("classic"));
        Assert.Equal(0, metrics.StreamsEnded("classic", "completed"));
    }

    private static HttpRequestMessage Speech(string text, bool stream) =>
        new(HttpMethod.Post, "/v1/speech") { Content = JsonContent.Create(new { text, voice = "ada", stream }) };
}
