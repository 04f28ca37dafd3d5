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

/// <summary>Told to the worker by the first poller: how many of a pass's reserved slots it filled (each now holds a run), or that the claim failed.</summary>
internal sealed record RunsClaimed(int Count, bool Failed, int Reserved);

/// <summary>Told to the worker by a poller: a run ended without passing its slot on; the slot is free again.</summary>
internal sealed record SlotFreed
{
    public static readonly SlotFreed Instance = new();
}

/// <summary>
/// The top of one worker. Owns the <see cref="SlotPool"/> (<c>Concurrency</c> slots shared by all queues) and hands
/// free slots to the first queue's poller, which claims from all the worker's queues in one call (a pass), in their
/// listed order, and routes each run to its queue's poller. Wakes on the doorbell,
/// on a freed slot and on a slow fallback timer (<c>BlmoveTimeout</c>); backs off when claims fail so a Redis
/// outage does not spin. Also runs the LeaseRenewer, the OnFailure caller and the heartbeat that keeps the worker's
/// registration fresh. (The reaper and the cron actor are started beside it, by <see cref="RedflowRuntime"/>.)
/// </summary>
internal sealed class WorkerActor : ReceiveActor, IWithTimers
{
    private sealed record DrainTimeout;
    private sealed record Heartbeat;

    /// <summary>The worker's timers: the fallback poll, the one-off poll after a failed claim, the heartbeat, the shutdown deadline.</summary>
    private static class TimerKeys
    {
        public const string Poll = "poll";
        public const string Backoff = "backoff";
        public const string Heartbeat = "heartbeat";
        public const string Drain = "drain";
    }

    /// <summary>How often the worker refreshes its registration (workflow metadata and liveness).</summary>
    internal static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(5);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private readonly List<IActorRef> _pollers = [];
    private readonly SlotPool _slots;
    private int _failures;
    private IActorRef? _stopRequester;
    private IActorRef _renewer = ActorRefs.Nobody;

    public WorkerActor(WorkerContext ctx)
    {
        _ctx = ctx;
        _slots = new SlotPool(ctx.Options.Concurrency);
        Receive<Poll>(_ => StartPass());
        Receive<RunsClaimed>(OnRunsClaimed);
        Receive<SlotFreed>(_ =>
        {
            _slots.Release();
            if (_stopRequester is not null) CheckStopped();
            else StartPass();
        });
        Receive<StopWorker>(OnStopWorker);
        Receive<StartClaimed>(m => PollerOf(m.Run.Queue).Forward(m));
        Receive<CancelRequested>(m => _renewer.Forward(m)); // from the cancel channel; the renewer knows which RunActor holds the run
        Receive<DrainTimeout>(_ =>
        {
            _log.Info("Worker {0}: {1} runs still running after the shutdown timeout; canceling them (worker stopping)", _ctx.Node, _slots.InFlight);
            foreach (var poller in _pollers) poller.Tell(new StopRun(StopReason.WorkerStopping));
        });
        Receive<Heartbeat>(_ => HeartbeatAsync().PipeTo(Self, success: () => Status.Success.Instance));
        Receive<Status.Success>(_ => _ctx.Health.RedisOk());
        Receive<Status.Failure>(f => _ctx.Health.Failed("refreshing its registration (heartbeat)", f.Cause));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>
    /// Pollers own RunActors, so they are resumed, not restarted, on an unexpected fault (a restart would stop
    /// their runs). Their Redis errors are answers, not faults.
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
        for (var i = 0; i < _ctx.Queues.Count; i++)
        {
            var queue = _ctx.Queues[i];
            _pollers.Add(Context.ActorOf(Props.Create(() => new QueuePollerActor(_ctx, queue, renewer, onFailure)), $"poller-{i}"));
        }
        // Fallback poll: the doorbell wakes idle pollers at once; this catches a lost doorbell message.
        Timers.StartPeriodicTimer(TimerKeys.Poll, Poll.Instance, _ctx.Options.BlmoveTimeout);
        Timers.StartPeriodicTimer(TimerKeys.Heartbeat, new Heartbeat(), HeartbeatInterval);
        Self.Tell(Poll.Instance);
    }

    /// <summary>The poller of a queue (a run leased from a queue this worker no longer lists goes to the first one).</summary>
    private IActorRef PollerOf(string queue)
    {
        for (var i = 0; i < _ctx.Queues.Count; i++)
            if (_ctx.Queues[i] == queue) return _pollers[i];
        return _pollers[0];
    }

    /// <summary>Refreshes the registration, and samples the worker's queues for the depth gauges.</summary>
    private async Task HeartbeatAsync()
    {
        await Registration.RegisterAsync(_ctx).ConfigureAwait(false);
        var queues = await Task.WhenAll(_ctx.Options.EffectiveQueues.Select(_ctx.Store.QueueStatsAsync)).ConfigureAwait(false);
        RedflowTelemetry.UpdateQueues(_ctx.Options.Prefix, queues);
    }

    /// <summary>
    /// Reserves the free slots and offers them to the first queue's poller, which claims across all queues in one call.
    /// Up to two passes overlap, so slots freed while a claim is in flight are claimed without waiting for it.
    /// </summary>
    private void StartPass()
    {
        if (_stopRequester is not null) return;
        // Every slot holds a run: there is nothing to claim for, which is polling on time (for the health check).
        if (_slots.InFlight == _slots.Capacity) _ctx.Health.Polled();
        var reserved = _slots.StartPass();
        if (reserved > 0) _pollers[0].Tell(new ClaimRuns(reserved));
    }

    private void OnRunsClaimed(RunsClaimed m)
    {
        _slots.Filled(m.Count); // reserved slots now running runs
        var left = m.Reserved - m.Count;
        if (m.Failed)
        {
            // Back off, so an outage does not spin. The fallback poll timer is slowed meanwhile.
            _slots.EndPass(left);
            var delay = Backoff.Delay(++_failures, Backoff.PollCap);
            Timers.StartSingleTimer(TimerKeys.Backoff, Poll.Instance, delay);
            Timers.StartPeriodicTimer(TimerKeys.Poll, Poll.Instance, delay + _ctx.Options.BlmoveTimeout);
            return;
        }
        if (_failures > 0)
        {
            _failures = 0;
            Timers.StartPeriodicTimer(TimerKeys.Poll, Poll.Instance, _ctx.Options.BlmoveTimeout);
        }
        _slots.EndPass(left);
        if (_stopRequester is not null)
        {
            CheckStopped();
            return;
        }
        // Runs were found and slots remain, or something woke us mid-pass: there may be more.
        if ((m.Count > 0 && _slots.Free > 0) || _slots.PassWanted) StartPass();
    }

    private void OnStopWorker(StopWorker m)
    {
        _stopRequester = Sender;
        _ctx.Lifecycle.StartDraining();
        Timers.Cancel(TimerKeys.Poll);
        Timers.Cancel(TimerKeys.Backoff);
        _log.Info("Worker {0} stopping: {1} runs in flight", _ctx.Node, _slots.InFlight);
        Timers.StartSingleTimer(TimerKeys.Drain, new DrainTimeout(), m.Timeout);
        CheckStopped();
    }

    private void CheckStopped()
    {
        if (!_slots.Drained) return; // runs still hold slots, or a pass is in flight
        Timers.Cancel(TimerKeys.Drain);
        _stopRequester!.Tell(WorkerStopped.Instance);
    }
}
