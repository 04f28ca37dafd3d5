using Akka.Actor;
using Akka.Event;

namespace Redflow.Runtime;

/// <summary>A queue got ready runs (the doorbell channel), or a fallback poll is due.</summary>
internal sealed record Poll
{
    public static readonly Poll Instance = new();
}

/// <summary>Stop taking runs, let running ones finish within the timeout, then hand the rest back; answered with <see cref="WorkerStopped"/>.</summary>
internal sealed record StopWorker(TimeSpan Timeout);

/// <summary>Every run of the worker has finished or was handed back.</summary>
internal sealed record WorkerStopped
{
    public static readonly WorkerStopped Instance = new();
}

/// <summary>
/// The top of one worker. Owns the slot pool (<c>Concurrency</c> slots shared by all queues) and hands free
/// slots to the queue pollers in the queues' listed order, one claim at a time (a pass). Wakes on the
/// doorbell, on a freed slot and on a slow fallback timer (<c>BlmoveTimeout</c>); backs off when claims
/// fail so a Redis outage does not spin. Also runs the LeaseRenewer, the local reaper (standalone) and the
/// heartbeat that keeps the worker's registration fresh.
/// </summary>
internal sealed class WorkerActor : ReceiveActor, IWithTimers
{
    private sealed record DrainTimeout;
    private sealed record Heartbeat;

    /// <summary>How often the worker refreshes its registration (workflow metadata and liveness).</summary>
    internal static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(5);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private readonly bool _clustered;
    private readonly List<IActorRef> _pollers = [];
    /// <summary>At most this many claim passes are in flight at once.</summary>
    private const int MaxPasses = 2;

    private int _free;     // slots neither running a run nor reserved by a pass in flight
    private int _passes;   // claim passes in flight
    private int _reserved; // slots reserved by the passes in flight
    private bool _pollAgain;
    private int _failures;
    private IActorRef? _stopRequester;
    private IActorRef _renewer = ActorRefs.Nobody;

    public WorkerActor(WorkerContext ctx, bool clustered)
    {
        _ctx = ctx;
        _clustered = clustered;
        _free = ctx.Options.Concurrency;
        Receive<Poll>(_ => StartPass());
        Receive<RunsClaimed>(OnRunsClaimed);
        Receive<SlotFreed>(_ =>
        {
            _free++;
            if (_stopRequester is not null) CheckStopped();
            else StartPass();
        });
        Receive<SlotTaken>(_ => _free--);
        Receive<StopWorker>(OnStopWorker);
        Receive<CancelRequested>(m => _renewer.Forward(m)); // from the cancel channel; the renewer knows which RunActor holds the run
        Receive<DrainTimeout>(_ =>
        {
            _log.Info("Worker {0}: {1} runs still running after the shutdown timeout; canceling them (worker stopping)", _ctx.Node, InFlight);
            foreach (var poller in _pollers) poller.Tell(new StopRun(StopReason.WorkerStopping));
        });
        Receive<Heartbeat>(_ => HeartbeatAsync().PipeTo(Self, success: () => Status.Success.Instance));
        Receive<Status.Success>(_ => _ctx.Health.RedisOk());
        Receive<Status.Failure>(f => _ctx.Health.Failed("refreshing its registration (heartbeat)", f.Cause));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Slots running a run (free slots and slots reserved by a pass in flight excluded).</summary>
    private int InFlight => _ctx.Options.Concurrency - _free - _reserved;

    /// <summary>
    /// Pollers own RunActors, so they are resumed, not restarted, on an unexpected fault (a restart would stop
    /// their runs). Their Redis errors are answers, not faults. The reaper has its own backoff supervisor.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(ex =>
    {
        _log.Error(ex, "Worker {0}: a child actor faulted; resuming it", _ctx.Node);
        return Directive.Resume;
    });

    protected override void PreStart()
    {
        var renewer = _renewer = Context.ActorOf(Props.Create(() => new LeaseRenewer(_ctx)), "lease-renewer");
        var onFailure = Context.ActorOf(Props.Create(() => new OnFailureActor(_ctx)), "on-failure");
        var queues = _ctx.Options.EffectiveQueues;
        for (var i = 0; i < queues.Count; i++)
        {
            var queue = queues[i];
            _pollers.Add(Context.ActorOf(Props.Create(() => new QueuePollerActor(_ctx, queue, renewer, onFailure)), $"poller-{i}"));
        }
        if (_ctx.Options.RunReaper) StartSingletons();
        // Fallback poll: the doorbell wakes idle pollers at once; this catches a lost doorbell message.
        Timers.StartPeriodicTimer("poll", Poll.Instance, _ctx.Options.BlmoveTimeout);
        Timers.StartPeriodicTimer("heartbeat", new Heartbeat(), HeartbeatInterval);
        Self.Tell(Poll.Instance);
    }

    /// <summary>Refreshes the registration, and samples the worker's queues for the depth gauges.</summary>
    private async Task HeartbeatAsync()
    {
        await Registration.RegisterAsync(_ctx).ConfigureAwait(false);
        var queues = await Task.WhenAll(_ctx.Options.EffectiveQueues.Select(_ctx.Store.QueueStatsAsync)).ConfigureAwait(false);
        RedflowTelemetry.UpdateQueues(_ctx.Options.Prefix, queues);
    }

    /// <summary>
    /// The reaper and the cron actor. Standalone, this worker runs its own. In an Akka.Cluster they run once per
    /// cluster, as singletons managed on every node (the oldest node hosts them; a crash moves them). Correctness
    /// never depends on their uniqueness: their scripts make two at once harmless, and claims reclaim expired
    /// leases themselves, so liveness does not wait for a singleton hand-over.
    /// </summary>
    private void StartSingletons()
    {
        if (!_clustered)
        {
            Context.ActorOf(ReaperActor.SupervisedProps(_ctx), "reaper");
            Context.ActorOf(CronActor.SupervisedProps(_ctx), "cron");
            return;
        }
        var settings = Akka.Cluster.Tools.Singleton.ClusterSingletonManagerSettings.Create(Context.System);
        Context.ActorOf(Akka.Cluster.Tools.Singleton.ClusterSingletonManager.Props(ReaperActor.SupervisedProps(_ctx), PoisonPill.Instance,
            settings.WithSingletonName("reaper")), "reaper");
        Context.ActorOf(Akka.Cluster.Tools.Singleton.ClusterSingletonManager.Props(CronActor.SupervisedProps(_ctx), PoisonPill.Instance,
            settings.WithSingletonName("cron")), "cron");
    }

    /// <summary>
    /// Reserves the free slots and offers them to the first queue; the pass goes on through the queues in
    /// <see cref="OnRunsClaimed"/>. Up to <see cref="MaxPasses"/> passes overlap, so slots freed while a claim is
    /// in flight are claimed without waiting for it.
    /// </summary>
    private void StartPass()
    {
        if (_stopRequester is not null) return;
        if (_free <= 0 || _passes >= MaxPasses)
        {
            _pollAgain = true;
            return;
        }
        _pollAgain = false;
        _passes++;
        var reserved = _free;
        _free = 0;
        _reserved += reserved;
        _pollers[0].Tell(new ClaimRuns(reserved, new ClaimPass(0, 0)));
    }

    private void OnRunsClaimed(RunsClaimed m)
    {
        var left = m.Reserved - m.Count;
        _reserved -= m.Count; // reserved slots now running runs
        var pass = m.Pass with { Claimed = m.Pass.Claimed + m.Count };
        if (m.Failed)
        {
            // Back off: 100 ms doubling to 5 s, so an outage does not spin. The fallback poll timer is paused meanwhile.
            EndPass(left);
            var delay = Backoff.Delay(++_failures, Backoff.PollCap);
            Timers.Cancel("poll");
            Timers.StartSingleTimer("backoff", Poll.Instance, delay);
            Timers.StartPeriodicTimer("poll", Poll.Instance, delay + _ctx.Options.BlmoveTimeout);
            return;
        }
        if (_failures > 0)
        {
            _failures = 0;
            Timers.StartPeriodicTimer("poll", Poll.Instance, _ctx.Options.BlmoveTimeout);
        }
        if (left > 0 && _stopRequester is null && pass.Queue + 1 < _pollers.Count)
        {
            _pollers[pass.Queue + 1].Tell(new ClaimRuns(left, pass with { Queue = pass.Queue + 1 }));
            return;
        }
        EndPass(left);
        if (_stopRequester is not null)
        {
            CheckStopped();
            return;
        }
        // Runs were found and slots remain, or something woke us mid-pass: there may be more.
        if ((pass.Claimed > 0 && _free > 0) || _pollAgain) StartPass();
    }

    private void EndPass(int unusedSlots)
    {
        _free += unusedSlots;
        _reserved -= unusedSlots;
        _passes--;
    }

    private void OnStopWorker(StopWorker m)
    {
        _stopRequester = Sender;
        _ctx.Lifecycle.StartDraining();
        Timers.Cancel("poll");
        Timers.Cancel("backoff");
        _log.Info("Worker {0} stopping: {1} runs in flight", _ctx.Node, InFlight);
        Timers.StartSingleTimer("drain", new DrainTimeout(), m.Timeout);
        CheckStopped();
    }

    private void CheckStopped()
    {
        if (InFlight > 0 || _passes > 0) return;
        Timers.Cancel("drain");
        _stopRequester!.Tell(WorkerStopped.Instance);
    }
}
