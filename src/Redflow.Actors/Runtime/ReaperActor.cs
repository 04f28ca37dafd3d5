using Akka.Actor;
using Akka.Event;

namespace Redflow.Runtime;

/// <summary>
/// Every <c>ReaperInterval</c> (and again at once after a full batch): requeues waiting runs whose wait is due, takes
/// back runs whose lease expired (their worker died), promotes due scheduled runs and purges runs past retention, all
/// in one script. Holds no state: two reapers at once
/// are harmless (the script is atomic and idempotent). A failed reap (Redis unreachable) is reported to the
/// worker's health and retried with backoff; the backoff supervisor above it only restarts it on a fault.
/// </summary>
internal sealed class ReaperActor : ReceiveActor, IWithTimers
{
    private sealed record Reap;

    /// <summary>At most this many runs per kind (due waits, due scheduled runs, expired leases, purges) per reap call.</summary>
    internal const int Batch = 1000;
    private sealed record ReapFailed(Exception Error);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private bool _inFlight;
    private PeriodicCall _reaps = null!; // the periodic reap, backing off while Redis fails

    public ReaperActor(WorkerContext ctx)
    {
        _ctx = ctx;
        Receive<Reap>(_ =>
        {
            if (_inFlight) return;
            _inFlight = true;
            _ctx.Store.ReapAsync(Batch, _ctx.Options.AbandonAfter, _ctx.Options.CancelGrace)
                .PipeTo(Self, failure: ex => new ReapFailed(ex));
        });
        Receive<Protocol.ReapResult>(r =>
        {
            _inFlight = false;
            _reaps.Succeeded();
            if (r.Reclaimed > 0)
            {
                _log.Info("Reaper took back {0} runs with expired leases", r.Reclaimed);
                RedflowTelemetry.LeaseTakeovers.Add(r.Reclaimed);
            }
            if (r.Canceled > 0) _log.Info("Reaper ended {0} canceled runs whose handlers ignored the cancel past the grace period", r.Canceled);
            // A full batch means more is due now (10,000 sleeps ending in the same second): reap again at once, not
            // an interval later, so a burst of due waits is woken within about its size over the script's speed.
            if (r.Woken >= Batch || r.Promoted >= Batch || r.Reclaimed >= Batch || r.Purged >= Batch) Self.Tell(new Reap());
        });
        Receive<ReapFailed>(m =>
        {
            _inFlight = false;
            _reaps.Failed(m.Error);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart()
    {
        _reaps = new PeriodicCall(Timers, _ctx.Health, "reaping expired leases", new Reap(), _ctx.Options.ReaperInterval);
        Self.Tell(new Reap());
        _reaps.Start();
    }

    /// <summary>Props of the reaper under a backoff supervisor that restarts it after a fault (0.2 s, growing to 10 s).</summary>
    public static Props SupervisedProps(WorkerContext ctx) =>
        Akka.Pattern.BackoffSupervisor.Props(Akka.Pattern.Backoff.OnFailure(
            Props.Create(() => new ReaperActor(ctx)), "reaper",
            TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10), 0.2, -1));
}
