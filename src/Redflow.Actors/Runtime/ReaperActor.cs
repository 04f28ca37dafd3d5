using Akka.Actor;
using Akka.Event;

namespace Redflow.Runtime;

/// <summary>
/// Every <c>ReaperInterval</c>: takes back runs whose lease expired (their worker died), promotes due
/// scheduled runs and purges runs past retention, all in one script. Holds no state: two reapers at once
/// are harmless (the script is atomic and idempotent). Runs under a backoff supervisor: a Redis outage
/// makes it fail and restart with growing delays instead of spinning.
/// </summary>
internal sealed class ReaperActor : ReceiveActor, IWithTimers
{
    private sealed record Reap;


    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private bool _inFlight;

    public ReaperActor(WorkerContext ctx)
    {
        _ctx = ctx;
        Receive<Reap>(_ =>
        {
            if (_inFlight) return;
            _inFlight = true;
            _ctx.Store.ReapAsync(1000, _ctx.Options.AbandonAfter, _ctx.Options.CancelGrace).PipeTo(Self);
        });
        Receive<Protocol.ReapResult>(r =>
        {
            _inFlight = false;
            if (r.Reclaimed > 0)
            {
                _log.Info("Reaper took back {0} runs with expired leases", r.Reclaimed);
                RedflowTelemetry.LeaseTakeovers.Add(r.Reclaimed);
            }
            if (r.Canceled > 0) _log.Info("Reaper ended {0} canceled runs whose handlers ignored the cancel past the grace period", r.Canceled);
        });
        // A failed reap (Redis unreachable) crashes the actor on purpose: the backoff supervisor restarts it later.
        Receive<Status.Failure>(f => throw new ReaperFailedException(f.Cause));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart()
    {
        Self.Tell(new Reap());
        Timers.StartPeriodicTimer("reap", new Reap(), _ctx.Options.ReaperInterval);
    }

    /// <summary>Props of the reaper under its backoff supervisor (restarts after 0.2 s, growing to 10 s).</summary>
    public static Props SupervisedProps(WorkerContext ctx) =>
        Akka.Pattern.BackoffSupervisor.Props(Akka.Pattern.Backoff.OnFailure(
            Props.Create(() => new ReaperActor(ctx)), "reaper",
            TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10), 0.2, -1));
}

/// <summary>A reap call failed; the reaper restarts under backoff.</summary>
internal sealed class ReaperFailedException(Exception inner) : Exception("The reap script failed.", inner);
