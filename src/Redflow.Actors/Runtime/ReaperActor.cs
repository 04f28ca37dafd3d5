using Akka.Actor;
using Akka.Event;

namespace Redflow.Runtime;

/// <summary>
/// Every <c>ReaperInterval</c>: takes back runs whose lease expired (their worker died), promotes due
/// scheduled runs and purges runs past retention, all in one script. Holds no state: two reapers at once
/// are harmless (the script is atomic and idempotent). A failed reap (Redis unreachable) is reported to the
/// worker's health and retried with backoff; the backoff supervisor above it only restarts it on a fault.
/// </summary>
internal sealed class ReaperActor : ReceiveActor, IWithTimers
{
    private sealed record Reap;
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
            _ctx.Store.ReapAsync(1000, _ctx.Options.AbandonAfter, _ctx.Options.CancelGrace)
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
