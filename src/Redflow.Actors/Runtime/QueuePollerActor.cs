using Akka.Actor;
using Akka.Event;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>
/// Told to the first queue's poller by the WorkerActor: claim up to <paramref name="Max"/> runs (slots the worker reserved
/// for this pass) from all the worker's queues in one call, an earlier queue served first.
/// </summary>
internal sealed record ClaimRuns(int Max);

/// <summary>
/// A run leased for this worker by a claim or a completion of another queue's poller, sent and answered at these local
/// timestamps, handed (through the WorkerActor) to the poller of the run's queue, which starts it; its slot is already
/// counted as held, so if it does not start here the slot is freed (<see cref="SlotFreed"/>).
/// </summary>
internal sealed record StartClaimed(ClaimedRun Run, long SentAt, long ReceivedAt);

/// <summary>
/// Told to its poller by a RunActor, once per run: the run's attempt is over. <paramref name="Next"/> holds the run its
/// completion claimed for the same slot, sent and answered at these local timestamps: the slot passes on to it. Carrying
/// the next run in the same message as the end means the two cannot be told apart by a race. <paramref name="Pooled"/>:
/// the RunActor (the sender) is idle and takes another run; false when it is stopping (a fault: it handed its run back)
/// or when it went on with the run its completion claimed itself (<paramref name="ContinuedWith"/>: a run of the same
/// queue, so the slot stays with it and no message round through the poller comes between the two runs).
/// </summary>
internal sealed record RunEnded(string RunId, string Token, IReadOnlyList<ClaimedRun> Next, long SentAt = 0, long ReceivedAt = 0, bool Pooled = true, StartRun? ContinuedWith = null);

/// <summary>
/// One per queue; runs each leased run of its queue on a supervised RunActor of its pool (an idle one, or a new one
/// when none is idle: the pool grows to the runs this queue holds at once, at most the worker's slots). The first queue's poller claims for the
/// worker's pass, from all its queues in one non-blocking claim call, and hands the runs of other queues to their
/// pollers (<see cref="StartClaimed"/>). A claim that fails is reported (the worker backs off);
/// an unanswered claim is repeated with the same request id, so a lost answer does not strand leased runs.
/// When a run ends, its slot goes to the run its completion claimed, or back to the worker (<see cref="SlotFreed"/>).
/// </summary>
internal sealed class QueuePollerActor : ReceiveActor
{
    private sealed record Claimed(IReadOnlyList<ClaimedRun> Runs, long SentAt, long ReceivedAt, ClaimRuns Request, IActorRef ReplyTo);
    private sealed record ClaimFailed(Exception Error, ClaimRuns Request, string RequestId, IActorRef ReplyTo);

    /// <summary>A run of a workflow this worker does not have goes back to the queue after this delay (at most).</summary>
    internal static readonly TimeSpan UnknownWorkflowDelay = TimeSpan.FromSeconds(5);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private readonly string _queue;
    private string? _unansweredRequest;
    private readonly Dictionary<string, (string Token, TurnRef Turn)> _runs = new(StringComparer.Ordinal);
    private readonly List<IActorRef> _idle = []; // pooled RunActors holding no run, the last one idle first to go
    private readonly Props _runActor;
    private int _runActors;

    public QueuePollerActor(WorkerContext ctx, string queue, IActorRef renewer, IActorRef onFailure)
    {
        _ctx = ctx;
        _queue = queue;
        _runActor = Props.Create(() => new RunActor(ctx, renewer, onFailure));
        Receive<ClaimRuns>(OnClaimRuns);
        Receive<Claimed>(OnClaimed);
        Receive<ClaimFailed>(m =>
        {
            _unansweredRequest ??= m.RequestId;
            _ctx.Health.Failed($"claiming runs on queues '{string.Join("', '", _ctx.Queues)}'", m.Error);
            m.ReplyTo.Tell(new RunsClaimed(0, Failed: true, m.Request.Max));
        });
        Receive<RunEnded>(OnRunEnded);
        Receive<StartClaimed>(m =>
        {
            if (!StartRun(m.Run, m.SentAt, m.ReceivedAt)) Context.Parent.Tell(SlotFreed.Instance);
        });
        Receive<StopRun>(m =>
        {
            foreach (var child in Context.GetChildren()) child.Tell(m);
        });
        Receive<Terminated>(m => _idle.Remove(m.ActorRef)); // a stopped RunActor (a fault) leaves the pool
    }

    /// <summary>Never restart a RunActor (it owns a running handler): stop it; its PostStop hands the run back.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    private void OnClaimRuns(ClaimRuns m)
    {
        // A claim whose answer was lost is repeated with its request id, so its runs are not stranded.
        var requestId = _unansweredRequest ?? Guid.NewGuid().ToString("N");
        _unansweredRequest = null;
        var sentAt = WorkerContext.Now();
        var replyTo = Sender;
        // Durability point: the claim leases runs in Redis with a fencing token; nothing is held locally before it.
        _ctx.Store.ClaimAsync(_ctx.Queues, m.Max, _ctx.Node, _ctx.Options.Lease, requestId, _ctx.Options.AbandonAfter)
            .PipeTo(Self, success: runs => new Claimed(runs, sentAt, WorkerContext.Now(), m, replyTo), failure: ex => new ClaimFailed(ex, m, requestId, replyTo));
    }

    private void OnClaimed(Claimed m)
    {
        _ctx.Health.RedisOk();
        _ctx.Health.Polled();
        var started = m.Runs.Count(run => StartOrHandOn(run, m.SentAt, m.ReceivedAt));
        m.ReplyTo.Tell(new RunsClaimed(started, Failed: false, m.Request.Max));
    }

    /// <summary>A run's attempt is over: its slot passes on to the run its completion claimed, or goes back to the worker.</summary>
    private void OnRunEnded(RunEnded m)
    {
        if (_runs.TryGetValue(m.RunId, out var run) && run.Token == m.Token) _runs.Remove(m.RunId);
        if (m.Pooled) _idle.Add(Sender);
        if (m.ContinuedWith is { } continued)
        {
            // The RunActor started the run its completion claimed: this poller only learns it holds that run now.
            Track(continued.Run, continued.Turn);
            return; // the slot passed on with it
        }
        var passedOn = false;
        foreach (var next in m.Next)
        {
            if (passedOn || _ctx.Lifecycle.Draining)
            {
                // Claimed as the worker began to stop (or, never, a second run for one slot): back to the queue.
                Logged(_ctx.Store.HandBackAsync(next.Id, next.Token, TimeSpan.Zero), $"handing back run {next.Id} (claimed as the worker began to stop)");
                continue;
            }
            passedOn = StartOrHandOn(next, m.SentAt, m.ReceivedAt);
        }
        if (!passedOn) Context.Parent.Tell(SlotFreed.Instance);
    }

    /// <summary>
    /// A leased run of this poller's queue starts here; one of another queue goes to that queue's poller, holding the slot
    /// (it frees it if the run does not start there). False when the run needs no slot.
    /// </summary>
    private bool StartOrHandOn(ClaimedRun run, long sentAt, long receivedAt)
    {
        if (run.Queue == _queue) return StartRun(run, sentAt, receivedAt);
        Context.Parent.Tell(new StartClaimed(run, sentAt, receivedAt));
        return true;
    }

    /// <summary>Starts a RunActor for a leased run (claimed by a call sent and answered at these local timestamps); false when it needs no slot here.</summary>
    private bool StartRun(ClaimedRun run, long sentAt, long receivedAt)
    {
        if (!_ctx.Workflows.TryGetValue(run.Workflow, out var definition))
        {
            var grace = _ctx.Options.UnknownWorkflowGrace;
            if (DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeMilliseconds(run.CreatedAtMs) > grace)
            {
                _log.Warning("Run {0} is of workflow '{1}', which no worker has taken within {2}; failing it", run.Id, run.Workflow, grace);
                var error = RunError.From(new UnknownWorkflowException(run.Workflow, [.. _ctx.Workflows.Keys]));
                Logged(_ctx.Store.FailAsync(new AttemptFailure(run.Id, run.Token, error, run.Attempt) { Retriable = false, Lease = _ctx.Options.Lease }),
                    $"failing run {run.Id} of unknown workflow '{run.Workflow}'");
                return false;
            }
            _log.Warning("Run {0} is of workflow '{1}', which this worker does not have; handing it back", run.Id, run.Workflow);
            Logged(_ctx.Store.HandBackAsync(run.Id, run.Token, grace < UnknownWorkflowDelay ? grace : UnknownWorkflowDelay),
                $"handing back run {run.Id} of workflow '{run.Workflow}'");
            return false;
        }
        if (_runs.TryGetValue(run.Id, out var existing) && existing.Token == run.Token)
            return false; // a repeated claim answer: already running here
        IActorRef actor;
        if (_idle.Count > 0)
        {
            actor = _idle[^1];
            _idle.RemoveAt(_idle.Count - 1);
        }
        else
        {
            actor = Context.ActorOf(_runActor, "run-" + ++_runActors);
            Context.Watch(actor);
        }
        var start = Runtime.StartRun.On(actor, _ctx, run, definition, sentAt, receivedAt);
        actor.Tell(start);
        Track(run, start.Turn);
        return true;
    }

    /// <summary>Records that <paramref name="turn"/> holds <paramref name="run"/>; an older holder of the run here (taken over, then back to this worker) is fenced by the new token.</summary>
    private void Track(ClaimedRun run, TurnRef turn)
    {
        if (_runs.TryGetValue(run.Id, out var existing) && existing.Token != run.Token) existing.Turn.Tell(LeaseLost.Instance);
        _runs[run.Id] = (run.Token, turn);
    }

    /// <summary>A write this poller does not wait for: a failure is reported to the worker's health (the lease then lapses and the run is taken back).</summary>
    private void Logged(Task write, string what)
    {
        var health = _ctx.Health;
        write.ContinueWith(t => health.Failed(what, t.Exception!), TaskContinuationOptions.OnlyOnFaulted);
    }
}
