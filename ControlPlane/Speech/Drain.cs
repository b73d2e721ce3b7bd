using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Speech;

/// <summary>SIGTERM drains before the host stops: /ready turns false, new speech gets 503, streams in flight finish.</summary>
/// <remarks>
/// The default console lifetime stops the host at once, and SignalR closes every connection the moment
/// the host starts stopping, which would cut hub streams mid-sentence. This lifetime takes the signal
/// instead, drains while Kestrel and the hubs keep serving, and only then asks the host to stop.
/// A second signal stops at once.
/// </remarks>
public sealed partial class DrainOnSignal(
    IHostApplicationLifetime lifetime,
    SpeechScheduler scheduler,
    IOptions<TimbreOptions> options,
    ILogger<DrainOnSignal> logger) : IHostLifetime, IDisposable
{
    private readonly List<PosixSignalRegistration> registrations = [];
    private int signals;
    private Task drain = Task.CompletedTask;

    /// <summary>Finishes when a drain has run to its end (or at once when none started).</summary>
    public Task Drained => drain;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal));
        registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void OnSignal(PosixSignalContext context)
    {
        // The process does not end here: the host stops once the drain is over.
        context.Cancel = true;
        if (Interlocked.Increment(ref signals) == 1)
        {
            drain = DrainAsync();
        }
        else
        {
            LogForced(logger, context.Signal);
            lifetime.StopApplication();
        }
    }

    private async Task DrainAsync()
    {
        var timeout = TimeSpan.FromSeconds(options.Value.Speech.DrainTimeoutSeconds);
        scheduler.BeginDrain();
        LogDraining(logger, scheduler.Running, timeout.TotalSeconds);
        var started = TimeProvider.System.GetTimestamp();
        while (scheduler.Running > 0 && TimeProvider.System.GetElapsedTime(started) < timeout)
        {
            await Task.Delay(50, CancellationToken.None);
        }

        LogDrained(logger, scheduler.Running, TimeProvider.System.GetElapsedTime(started).TotalSeconds);
        lifetime.StopApplication();
    }

    public void Dispose()
    {
        foreach (var r in registrations)
        {
            r.Dispose();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Draining: {Running} speech streams in flight, waiting up to {Timeout} s; new requests get 503")]
    private static partial void LogDraining(ILogger logger, int running, double timeout);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Drain finished with {Running} streams still running after {Seconds:0.0} s; stopping")]
    private static partial void LogDrained(ILogger logger, int running, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Signal} again during the drain: stopping now")]
    private static partial void LogForced(ILogger logger, PosixSignal signal);
}
