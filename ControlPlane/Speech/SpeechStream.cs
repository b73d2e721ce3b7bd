using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Timbre.ControlPlane.Engines;

namespace Timbre.ControlPlane.Speech;

/// <summary>The stream a started request reads, and how a client that stops taking it is cut off.</summary>
public sealed partial class Synthesizer
{
    private void Reject(string reason) => metrics.Rejected(reason);

    private void CutOffLogged(SpeechJob job, string why) => LogCutOff(logger, job.Engine, job.Voice.Id, why);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cut off a {Engine} stream for voice {Voice}: {Why}")]
    private static partial void LogCutOff(ILogger logger, string engine, string voice, string why);

    /// <summary>
    /// An admitted request whose first audio is ready. Reading it to the end completes it; disposing it
    /// early closes the engine's generator and frees the engine slot.
    /// </summary>
    /// <remarks>
    /// The turn passes between the engine (making the next chunk) and the client (taking the last one:
    /// encoding, writing, waiting for the socket). A turn with the client is watched: when it accepts
    /// nothing for <c>WriteStallSeconds</c>, or for <see cref="DeadlineGrace"/> after the request's deadline
    /// passed, the connection is cut, which ends the blocked write, and the caller's disposal then frees
    /// the slot. A client still reading comes back within the grace and gets the timeout as an error
    /// (a hub stream ends with it instead of losing its connection); a deadline passing on the engine's
    /// turn stops the engine and surfaces from <see cref="ReadPcmAsync"/> the same way.
    /// </remarks>
    public sealed class SpeechStream : IAsyncDisposable
    {
        private const int EngineTurn = 0;
        private const int ClientTurn = 1;
        private const int Over = 2;

        /// <summary>How long a client writing when the deadline passes has to come back for its timeout error.</summary>
        private static readonly TimeSpan DeadlineGrace = TimeSpan.FromSeconds(1);

        private readonly Synthesizer owner;
        private readonly IAsyncEnumerator<float[]> chunks;
        private readonly SpeechScheduler.SpeechLease lease;
        private readonly CancellationTokenSource timeout;
        private readonly Action cutOff;
        private readonly CancellationToken callerGone;
        private readonly TimeSpan stallLimit;
        private readonly ITimer stall;
        private readonly CancellationTokenRegistration deadline;
        private readonly long started = TimeProvider.System.GetTimestamp();
        private readonly IncrementalHash audioHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private int turn = ClientTurn;
        private int count;
        private long samples;
        private string? outcome;
        private int disposed;

        internal SpeechStream(Synthesizer owner, SpeechJob job, string clipId, int sampleRate, IAsyncEnumerator<float[]> chunks, SpeechScheduler.SpeechLease lease, CancellationTokenSource timeout, Action cutOff, CancellationToken callerGone)
        {
            this.owner = owner;
            this.chunks = chunks;
            this.lease = lease;
            this.timeout = timeout;
            this.cutOff = cutOff;
            this.callerGone = callerGone;
            Job = job;
            ClipId = clipId;
            SampleRate = sampleRate;
            stallLimit = TimeSpan.FromSeconds(owner.settings.Speech.WriteStallSeconds);
            // The first chunk is ready: the client's turn starts now.
            stall = TimeProvider.System.CreateTimer(_ => CutOff(DeadlinePassed ? RejectionReason.Timeout : RejectionReason.SlowClient), null, stallLimit, Timeout.InfiniteTimeSpan);
            deadline = timeout.Token.Register(() =>
            {
                // On the engine's turn the cancelled engine call reports the timeout; on the client's, the grace starts.
                if (DeadlinePassed && Volatile.Read(ref turn) == ClientTurn)
                {
                    stall.Change(DeadlineGrace, Timeout.InfiniteTimeSpan);
                }
            });
        }

        public SpeechJob Job { get; }

        /// <summary>The clip's id in the generation log.</summary>
        public string ClipId { get; }

        public int SampleRate { get; }

        /// <summary>The audio as mono 16-bit little-endian PCM chunks, the first one included; read once.</summary>
        /// <remarks>
        /// Every path sends these bytes (pcm and wav as they are, the hub in pieces, ffmpeg encodes them), and
        /// the clip's hash in the generation log is of them: each chunk is converted once, here.
        /// </remarks>
        /// <exception cref="SpeechRejectedException">The deadline passed while the engine worked (reason Timeout).</exception>
        /// <exception cref="OperationCanceledException">The client was cut off, or went away.</exception>
        public async IAsyncEnumerable<byte[]> ReadPcmAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            var current = chunks.Current;
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                count++;
                samples += current.Length;
                var pcm = Pcm.ToInt16(current);
                audioHash.AppendData(pcm);
                yield return pcm;
                EngineTakesTurn();
                bool more;
                try
                {
                    more = await chunks.MoveNextAsync();
                }
                catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested && Volatile.Read(ref turn) == EngineTurn)
                {
                    outcome = "timeout";
                    owner.Reject(Reason(RejectionReason.Timeout));
                    throw new SpeechRejectedException(RejectionReason.Timeout, $"The request ran past {owner.settings.Speech.RequestTimeoutSeconds:0} s (Timbre:Speech:RequestTimeoutSeconds) and was stopped.", null);
                }
                catch (EngineFailedException)
                {
                    outcome = "failed";
                    throw;
                }

                if (!more)
                {
                    outcome = "completed";
                    // The last writes are the client's too: a client that stops reading now is still cut off.
                    ClientTakesTurn();
                    yield break;
                }

                current = chunks.Current;
                ClientTakesTurn();
            }
        }

        private void EngineTakesTurn()
        {
            if (Interlocked.CompareExchange(ref turn, EngineTurn, ClientTurn) != ClientTurn)
            {
                throw new OperationCanceledException("The client was cut off.");
            }

            stall.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }

        private void ClientTakesTurn()
        {
            if (Interlocked.CompareExchange(ref turn, ClientTurn, EngineTurn) != EngineTurn)
            {
                return;
            }

            stall.Change(DeadlinePassed ? DeadlineGrace : stallLimit, Timeout.InfiniteTimeSpan);
        }

        // The timeout source also fires when the caller hangs up (it is linked to the caller's token): that is no timeout.
        private bool DeadlinePassed => timeout.IsCancellationRequested && !callerGone.IsCancellationRequested;

        /// <summary>Cuts the connection, once, and only while the client holds the turn.</summary>
        private void CutOff(RejectionReason why)
        {
            if ((why == RejectionReason.Timeout && !DeadlinePassed) || Interlocked.CompareExchange(ref turn, Over, ClientTurn) != ClientTurn)
            {
                return;
            }

            var reason = Reason(why);
            outcome = reason;
            owner.Reject(reason);
            owner.CutOffLogged(Job, why == RejectionReason.Timeout
                ? $"the request passed Timbre:Speech:RequestTimeoutSeconds ({owner.settings.Speech.RequestTimeoutSeconds:0} s) while its audio was being written"
                : $"the client accepted no audio for Timbre:Speech:WriteStallSeconds ({stallLimit.TotalSeconds:0} s)");
            cutOff();
        }

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0)
            {
                return;
            }

            Interlocked.Exchange(ref turn, Over);
            await stall.DisposeAsync();
            await deadline.DisposeAsync();
            try
            {
                // Leaving before the end closes the Python generator here, before the slot is freed.
                await chunks.DisposeAsync();
            }
            finally
            {
                lease.Dispose();
                timeout.Dispose();
                owner.Ended(Job, ClipId, outcome ?? "cancelled", count, samples / (double)SampleRate, Convert.ToHexStringLower(audioHash.GetHashAndReset()), TimeProvider.System.GetElapsedTime(started));
                audioHash.Dispose();
            }
        }
    }
}
