using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>
/// Told to an idle RunActor by its poller: run this leased run's attempt, leased until <paramref name="LocalDeadline"/>,
/// a local monotonic timestamp (<see cref="WorkerContext.LeaseDeadline"/>); <paramref name="Turn"/> is its address there.
/// </summary>
internal sealed record StartRun(ClaimedRun Run, WorkflowDefinition Definition, long LocalDeadline, TurnRef Turn)
{
    /// <summary>A new turn on <paramref name="actor"/> for <paramref name="run"/>, claimed by a call sent and answered at these local timestamps.</summary>
    public static StartRun On(IActorRef actor, WorkerContext ctx, ClaimedRun run, WorkflowDefinition definition, long sentAt, long receivedAt) =>
        new(run, definition, ctx.LeaseDeadline(run.LeaseDeadlineMs, sentAt, receivedAt), new TurnRef(actor, ctx.NextTurn(), run.Id));
}

/// <summary>
/// A message for the run of turn <paramref name="Turn"/> (see <see cref="TurnRef"/>): its RunActor handles it only while
/// it holds that run, and drops it (or fails a handler call it carries) once the run's attempt is over there.
/// </summary>
internal sealed record ForTurn(int Turn, string RunId, object Message);

/// <summary>
/// The address of one run on its pooled RunActor: what the run's handler, its StepActor calls, the lease renewer and the
/// poller tell. A RunActor runs one run after another (one per turn); a late message of an earlier run (a handler that
/// lost its lease and ran on, a renewal in flight, a write's answer) cannot reach the run it holds now.
/// </summary>
internal sealed class TurnRef(IActorRef actor, int turn, string runId) : ICanTell
{
    /// <summary>The turn's number, unique among the worker's RunActors (<see cref="WorkerContext.NextTurn"/>).</summary>
    public int Number => turn;

    /// <summary>Tells the run's RunActor <paramref name="message"/>, for this turn only.</summary>
    public void Tell(object message, IActorRef? sender) => actor.Tell(new ForTurn(turn, runId, message), sender ?? ActorRefs.NoSender);

    /// <summary>Tells the run's RunActor <paramref name="message"/> (no sender), for this turn only.</summary>
    public void Tell(object message) => Tell(message, null);
}

/// <summary>Told to a RunActor by its handler (through <see cref="ActorStepApi"/>): run step <paramref name="Name"/>, or answer it from the record; the answer goes to <paramref name="Reply"/> (local only).</summary>
internal sealed record RunStep(string Name, Func<CancellationToken, Task<string>> Invoke, StepOptions? Options, TaskCompletionSource<string> Reply, Activity? Activity = null);

/// <summary>Told to a RunActor by its handler (through <see cref="ActorStepApi"/>): the handler reached a wait (a child, a sleep, a signal, an event); the answer goes to <paramref name="Reply"/>, or never, if the run suspends.</summary>
/// <paramref name="StartChild"/>: a child wait's start (its emit), made by the RunActor unless the step is recorded.
internal sealed record RunWait(WaitRequest Request, TaskCompletionSource<string> Reply, Func<Task<string>>? StartChild = null);

/// <summary>
/// Told to a RunActor after the handler's code has run up to its next await: after the handler's start, and after each
/// answer to one of its calls (<see cref="Replies"/>). With none outstanding and every unfinished call a pending wait, the
/// handler cannot make another call: the run suspends.
/// </summary>
internal sealed record HandlerIdle
{
    public static readonly HandlerIdle Instance = new();
}

/// <summary>Told to a RunActor by its StepActor: the step's result is recorded in Redis (cached for this attempt).</summary>
internal sealed record StepRecorded(string Name, string Output);

/// <summary>Told to a RunActor by its StepActor: the step's function failed (recorded with the run's failure).</summary>
internal sealed record StepFailed(string Name, Exception Error, TimeSpan Ran);

/// <summary>Told to a RunActor by its StepActor as it stops without having answered (the worker stopping, or a fault).</summary>
internal sealed record StepInterrupted(string Name);

/// <summary>Told to a RunActor by its poller: stop the handler for this reason (the worker is stopping).</summary>
internal sealed record StopRun(StopReason Reason);

/// <summary>Told to a RunActor by the LeaseRenewer: its lease now lasts at least until this monotonic timestamp.</summary>
internal sealed record LeaseRenewed(long LocalDeadline);

/// <summary>Told to a RunActor (by the renewer, a StepActor, its step API or its poller): its lease is gone (taken over, canceled or finished elsewhere).</summary>
internal sealed record LeaseLost
{
    public static readonly LeaseLost Instance = new();
}

/// <summary>A cancel was requested for a running run (from the cancel channel, or a renewal's answer); the worker forwards it to the renewer, which tells the RunActor holding the run.</summary>
internal sealed record CancelRequested(string RunId);


/// <summary>How a RunActor ended its run's attempt.</summary>
internal enum RunOutcome
{
    /// <summary>Succeeded with its output (complete.lua).</summary>
    Completed,
    /// <summary>Failed: retried after its backoff, or failed for good (fail.lua).</summary>
    Failed,
    /// <summary>Ended canceled on request (cancel.lua).</summary>
    Canceled,
    /// <summary>Given back to its queue unfinished: the worker is stopping (handback.lua).</summary>
    HandedBack,
    /// <summary>Every unfinished call of the handler waits: the run is waiting (suspend.lua); the handler is abandoned untouched.</summary>
    Suspended,
    /// <summary>Its lease is gone: another worker owns the run; nothing is written.</summary>
    LeaseLost,
}

/// <summary>
/// Owns one leased run at a time: starts its handler as a task, serves its steps (recorded results from the claim, or
/// its StepActor for new ones), keeps a local lease deadline from the renewals and cancels its own handler before that
/// deadline passes (self-fencing), and records the outcome with one fenced script: complete, fail-or-retry, cancel or
/// hand back. The run's fate follows <see cref="StopReason"/>, never the exception type. Pooled by its poller: when a
/// run's attempt is over it tells <see cref="RunEnded"/> and waits, idle, for the next <see cref="StartRun"/> (an actor's
/// creation and stop cost more than a no-step run's own work on the worker); each run is a turn, and what is told for a
/// run comes through its <see cref="TurnRef"/>, so nothing of an earlier run reaches a later one. It is never restarted
/// (a restart would leave the old handler running beside a new one); if it faults, its supervisor stops it and
/// <see cref="PostStop"/> hands its run back.
/// </summary>
internal sealed class RunActor : UntypedActor, IWithTimers
{
    /// <summary>Where the actor stands; each message is handled by what it means in the current phase.</summary>
    private enum Phase
    {
        /// <summary>No run: in its poller's pool, waiting for the next <see cref="StartRun"/>.</summary>
        Idle,
        /// <summary>The claim's answer left too little of the lease to start the handler: waiting for the renewer to confirm (or lose) the lease.</summary>
        AwaitingLease,
        /// <summary>The handler runs and its steps and waits are served.</summary>
        Running,
        /// <summary>Every unfinished call of the handler waits: the suspension is being written (handler calls wait for its answer).</summary>
        Suspending,
        /// <summary>An outcome was chosen and is being written (retried in place while the lease lasts).</summary>
        Recording,
    }

    private sealed record HandlerSucceeded(string Output);
    private sealed record HandlerFailed(Exception Error);
    private sealed record FenceCheck;
    private sealed record HandBackNow;
    private sealed record OutcomeWritten(WriteOutcome Outcome, bool WillRetry = false, IReadOnlyList<ClaimedRun>? Next = null, long SentAt = 0, long ReceivedAt = 0);
    private sealed record OutcomeFailed(Exception Error);
    private sealed record RetryOutcome;
    private sealed record WaitChecked(string Step, WaitAnswer Answer);
    private sealed record WaitCheckFailed(string Step, Exception Error);
    private sealed record CheckWaitAgain(string Step);
    private sealed record RetrySuspend;
    private sealed record ChildStarted(string Step, string ChildRunId);
    private sealed record ChildStartFailed(string Step, Exception Error);
    private sealed record SuspendAnswered(SuspendOutcome Outcome);
    private sealed record SuspendFailed(Exception Error);
    private sealed record ReplayHoldPassed;

    /// <summary>A wait of the handler that has not returned: being checked in Redis (wait.lua), or pending with its deadline.</summary>
    private sealed class WaitCall(WaitRequest request, TaskCompletionSource<string> reply)
    {
        public WaitRequest Request { get; set; } = request;
        public TaskCompletionSource<string> Reply { get; } = reply;
        public bool Checking { get; set; }
        public long? DeadlineMs { get; set; }
        public int CheckAttempts { get; set; }
    }

    /// <summary>
    /// The actor's timers: the self-fencing check, the wait for a stopping handler, the retry of a failed outcome write,
    /// the retry of a failed suspension, the hold of a replayed result, the retry of a wait's check.
    /// </summary>
    private static class TimerKeys
    {
        public const string Fence = "fence";
        public const string StopWait = "stop-wait";
        public const string RetryOutcome = "retry-outcome";
        public const string Suspend = "suspend";
        public const string ReplayHold = "replay-hold";
        public static string CheckWait(string step) => "check-wait:" + step;
    }

    /// <summary>How long a handler told to stop (worker stopping) may take before the run is handed back anyway.</summary>
    internal static readonly TimeSpan StopWait = TimeSpan.FromSeconds(5);

    /// <summary>How long a replayed result waits at most for an earlier-recorded one to be asked for.</summary>
    internal static readonly TimeSpan ReplayHold = TimeSpan.FromMilliseconds(20);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private readonly IActorRef _renewer;
    private readonly IActorRef _onFailure;
    private IActorRef? _steps; // the StepActor, made with the first step that ran here and kept from run to run
    private int _stepActors;

    // The run of this turn: every field below is set anew by Begin (and the collections cleared), so nothing of an
    // earlier run stays.
    private ClaimedRun _run = null!;
    private WorkflowDefinition _definition = null!;
    private TurnRef _self = null!; // this turn's address: what the handler, the StepActor calls, the renewer and PipeTo tell
    private RunStop _stop = null!;
    private readonly Dictionary<string, CachedStep> _recorded = new(StringComparer.Ordinal);
    private string[] _replayOrder = []; // the claim's recorded steps by their place (seq), when a replay has two or more
    private readonly HashSet<string> _replayed = new(StringComparer.Ordinal); // of those, asked for (or skipped)
    private int _replayNext; // the first of _replayOrder not asked for
    private readonly List<(long Seq, Action Deliver)> _held = []; // replayed results waiting for an earlier-recorded one
    private readonly Dictionary<string, WaitCall> _waits = new(StringComparer.Ordinal);
    private readonly List<object> _stash = []; // handler messages that came while the suspension was being written
    private int _runningSteps;
    private RunProgress _progress = null!; // the current step, for the renewer to record (inspection only)
    private int _busy; // the handler's start and answers to its calls whose code has not reached its next await (HandlerIdle)
    private int _suspendAttempts;
    private long _started;
    private long _localDeadline;
    private Phase _phase = Phase.Idle;
    private RunOutcome? _outcome;
    private Func<Task<OutcomeWritten>>? _write; // the outcome's write, repeated in place on a Redis error
    private int _writeAttempts;
    private StepFailed? _failedStep;
    private Activity? _activity;
    private RunScope? _scope;

    /// <summary>A pooled RunActor of a poller, idle until its first <see cref="StartRun"/>.</summary>
    public RunActor(WorkerContext ctx, IActorRef renewer, IActorRef onFailure)
    {
        _ctx = ctx;
        _renewer = renewer;
        _onFailure = onFailure;
    }

    public ITimerScheduler Timers { get; set; } = null!;

    // One switch instead of ReceiveActor's handler table (cheaper to build, and to match on).
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case StartRun m: Begin(m); return;
            case ForTurn m when _phase != Phase.Idle && m.Turn == _self.Number: OnTurnMessage(m.Message); return;
            case ForTurn m: OnLateMessage(m); return;
            case Terminated m when m.ActorRef.Equals(_steps): _steps = null; return; // stopped by a fault: the next step makes another
            case StopRun when _phase == Phase.Idle: return;
            case StopRun: OnTurnMessage(message); return; // told by the poller to every RunActor it holds
            default:
                if (_phase == Phase.Idle) Unhandled(message);
                else OnTurnMessage(message); // this turn's timers (an earlier turn's were canceled with it)
                return;
        }
    }

    /// <summary>
    /// A message for an earlier run: a handler that lost its lease and ran on, a write's answer, a renewal in flight. The
    /// run is not this actor's any more; a call of its handler is answered "lease lost", so the handler ends.
    /// </summary>
    private static void OnLateMessage(ForTurn late)
    {
        switch (late.Message)
        {
            case RunStep m: Replies.Fail(m.Reply, new LeaseLostException(late.RunId)); break;
            case RunWait m: Replies.Fail(m.Reply, new LeaseLostException(late.RunId)); break;
        }
    }

    private void OnTurnMessage(object message)
    {
        if (_phase == Phase.Suspending && message is RunStep or RunWait or HandlerSucceeded or HandlerFailed)
        {
            _stash.Add(message); // handled once the suspension's answer says whether the run still runs here
            return;
        }
        switch (message)
        {
            case RunStep m: OnRunStep(m); break;
            case RunWait m: OnRunWait(m); break;
            case StepRecorded m:
                _recorded[m.Name] = new CachedStep(long.MaxValue, m.Output);
                StepEnded();
                break;
            case StepFailed m:
                _failedStep = m;
                StepEnded();
                break;
            case StepInterrupted: StepEnded(); break;
            case HandlerIdle:
                _busy--;
                MaybeSuspend();
                break;
            case ChildStarted m: OnChildStarted(m); break;
            case ChildStartFailed m: OnChildStartFailed(m); break;
            case WaitChecked m: OnWaitChecked(m); break;
            case WaitCheckFailed m: OnWaitCheckFailed(m); break;
            case CheckWaitAgain m: CheckWait(m.Step); break;
            case RetrySuspend: Suspend(); break;
            case SuspendAnswered m: OnSuspendAnswered(m.Outcome); break;
            case SuspendFailed m: OnSuspendFailed(m.Error); break;
            case ReplayHoldPassed: ReleaseHeld(null, force: true); break;
            case HandlerSucceeded m: OnHandlerSucceeded(m); break;
            case HandlerFailed m: OnHandlerFailed(StepActor.Unwrap(m.Error)); break;
            case LeaseRenewed m: OnLeaseRenewed(m); break;
            case FenceCheck: CheckFence(); break;
            case LeaseLost: OnLeaseLost(); break;
            case CancelRequested:
                if (_phase == Phase.AwaitingLease) RecordCanceled();
                else if (_stop.Request(StopReason.CancelRequested)) _log.Info("Run {0}: cancel requested, handler token canceled", _run.Id);
                break;
            case StopRun when _phase == Phase.AwaitingLease || (_phase == Phase.Running && _runningSteps == 0 && _waits.Count > 0):
                HandBack(); // no step body runs: nothing to wait for
                break;
            case StopRun m:
                _stop.Request(m.Reason);
                // A handler that ignores its token is not waited for forever: the run is handed back.
                Timers.StartSingleTimer(TimerKeys.StopWait, new HandBackNow(), StopWait);
                break;
            case HandBackNow: HandBack(); break;
            case OutcomeWritten m: OnOutcomeWritten(m); break;
            case OutcomeFailed m: OnOutcomeFailed(m); break;
            case RetryOutcome: Write(); break;
            default: Unhandled(message); break;
        }
    }

    /// <summary>The StepActor owns no handler; if it faults it is stopped (its unanswered step calls fail, see StepActor.PostStop).</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    /// <summary>Takes a leased run: this turn's state set anew, then the handler started (or the lease renewed first).</summary>
    private void Begin(StartRun m)
    {
        if (_phase != Phase.Idle)
        {
            // Never: the poller tells StartRun only to an idle actor. Refused loudly rather than mixing two runs.
            throw new InvalidOperationException($"RunActor told to start run {m.Run.Id} while it holds run {_run.Id}");
        }
        var run = m.Run;
        _run = run;
        _definition = m.Definition;
        _self = m.Turn;
        _stop = new RunStop();
        _recorded.Clear();
        foreach (var (name, step) in run.CachedSteps) _recorded[name] = step;
        _replayOrder = run.CachedSteps.Count > 1 ? [.. run.CachedSteps.OrderBy(kv => kv.Value.Seq).Select(kv => kv.Key)] : [];
        _replayed.Clear();
        _replayNext = 0;
        _held.Clear();
        _waits.Clear();
        _stash.Clear();
        _runningSteps = 0;
        _progress = new RunProgress();
        _busy = 0;
        _suspendAttempts = 0;
        _started = WorkerContext.Now();
        _localDeadline = m.LocalDeadline;
        _outcome = null;
        _write = null;
        _writeAttempts = 0;
        _failedStep = null;
        _activity = null;
        _scope = null;

        _renewer.Tell(new TrackLease(_run.Id, _run.Token, _self, _progress));
        var left = WorkerContext.Until(_localDeadline) - _ctx.FenceMargin;
        if (left <= TimeSpan.Zero)
        {
            // The claim's answer came too late to run the handler safely. The lease is not wasted: the renewer
            // renews it now, and the handler starts once that lands (or the run is dropped if the lease is gone).
            _phase = Phase.AwaitingLease;
            _renewer.Tell(RenewNow.Instance);
            _log.Info("Run {0}: the claim was answered late; renewing its lease before starting it", _run.Id);
            return;
        }
        if (left < _ctx.Options.Lease / 2) _renewer.Tell(RenewNow.Instance); // a slow answer: renew early
        StartHandler();
    }

    protected override void PostStop()
    {
        if (_phase != Phase.Idle)
        {
            _activity?.Dispose();
            // Stopped without an outcome (a fault, or the actor system shutting down): hand the run back.
            _renewer.Tell(new UntrackLease(_run.Id, _run.Token));
            _stop.Request(StopReason.WorkerStopping);
            var health = _ctx.Health;
            var runId = _run.Id;
            _ = _ctx.Store.HandBackAsync(_run.Id, _run.Token, TimeSpan.Zero).ContinueWith(
                t => health.Failed($"handing back run {runId} after a fault (the reaper will take it back)", t.Exception!),
                TaskContinuationOptions.OnlyOnFaulted);
            // Its run's attempt is over without an outcome: the poller frees the slot (this actor leaves the pool).
            Context.Parent.Tell(new RunEnded(_run.Id, _run.Token, [], Pooled: false));
        }
    }

    private void StartHandler()
    {
        _phase = Phase.Running;
        ScheduleFenceCheck();
        RedflowTelemetry.RunsStarted.Add(1, RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue));
        if (_run.Woken) RedflowTelemetry.RunsResumed.Add(1, RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue));
        var info = new RunInfo(_run.Id, _run.Workflow, _run.Queue, _run.Attempt, _run.MaxAttempts);
        var scope = _scope = new RunScope(info, _stop, new ActorStepApi(_self, _stop.Token, _ctx, _run), _ctx.Options.Services);
        // The run's span continues the trace of the code that emitted it. It becomes the current activity (and a log
        // scope carries the run's ids) only inside the handler's task: the actor's own thread is left as it was.
        var previous = Activity.Current;
        ActivityContext.TryParse(_run.TraceParent, null, isRemote: true, out var parent);
        _activity = RedflowTelemetry.Source.StartActivity("redflow.run", ActivityKind.Consumer, parent,
            RedflowTelemetry.RunTags(_run.Id, _run.Workflow, _run.Queue, _run.Attempt));
        using (_ctx.LogScope(_run))
        {
            // The handler runs as a task off the actor's thread; its outcome comes back as a message. Once its code has
            // reached its first await, the actor is told it is idle.
            _busy++;
            var (self, definition, input) = (_self, _definition, _run.Input);
            Task.Run(() =>
                {
                    var handler = definition.ExecuteAsync(input, scope);
                    self.Tell(HandlerIdle.Instance);
                    return handler;
                })
                .PipeTo(_self, success: output => new HandlerSucceeded(output), failure: ex => new HandlerFailed(ex));
        }
        Activity.Current = previous;
    }

    private void OnRunStep(RunStep step)
    {
        if (_phase != Phase.Running || _stop.Reason == StopReason.LeaseLost)
        {
            Replies.Fail(step.Reply, new LeaseLostException(_run.Id));
            return;
        }
        // Durability point: a step recorded in an earlier attempt is served from the record, never run again.
        if (_recorded.TryGetValue(step.Name, out var recorded))
        {
            if (recorded.Kind is { } kind) Reply(() => step.Reply.TrySetException(KindChanged(step.Name, kind, null)));
            else Replay(step.Name, recorded, () => step.Reply.TrySetResult(recorded.Output));
            return;
        }
        _runningSteps++;
        _progress.Step = step.Name;
        // One StepActor runs the steps of this actor's runs, made with the first (and again if a fault stopped it).
        if (_steps is null)
        {
            var ctx = _ctx;
            _steps = Context.ActorOf(Props.Create(() => new StepActor(ctx)), "steps-" + ++_stepActors);
            Context.Watch(_steps);
        }
        _steps.Tell(new StepCall(step, _run, _stop.Token, _self));
    }

    // The StepActor answers the handler's call itself (Replies, telling this actor HandlerIdle after it).
    private void StepEnded()
    {
        if (--_runningSteps == 0) _progress.Step = null;
        _busy++;
    }

    /// <summary>Answers handler calls (in order, on the thread pool); the handler is busy until it tells <see cref="HandlerIdle"/>.</summary>
    private void Reply(IReadOnlyList<Action> inOrder)
    {
        _busy++;
        Replies.Run(inOrder, _self);
    }

    private void Reply(Action complete) => Reply([complete]);

    // ---- waits -----------------------------------------------------------------------------------------

    private void OnRunWait(RunWait m)
    {
        var wait = m.Request;
        if (_phase != Phase.Running || _stop.Reason == StopReason.LeaseLost)
        {
            Replies.Fail(m.Reply, new LeaseLostException(_run.Id));
            return;
        }
        // A wait satisfied (or timed out) in an earlier attempt answers from its record.
        if (_recorded.TryGetValue(wait.Step, out var recorded))
        {
            if (recorded.Kind != wait.Kind) Reply(() => m.Reply.TrySetException(KindChanged(wait.Step, recorded.Kind, wait.Kind)));
            else Replay(wait.Step, recorded, () => Answer(m.Reply, wait, recorded));
            return;
        }
        var call = _waits[wait.Step] = new WaitCall(wait, m.Reply);
        if (m.StartChild is null)
        {
            CheckWait(wait.Step);
            return;
        }
        // A child is started first (its emit, idempotent by its derived id), as part of the wait: not pending meanwhile.
        call.Checking = true;
        var step = wait.Step;
        m.StartChild().PipeTo(_self, success: id => new ChildStarted(step, id), failure: ex => new ChildStartFailed(step, ex));
    }

    private void OnChildStarted(ChildStarted m)
    {
        if (!_waits.TryGetValue(m.Step, out var call)) return;
        call.Request = call.Request with { Name = m.ChildRunId };
        CheckWait(m.Step);
    }

    private void OnChildStartFailed(ChildStartFailed m)
    {
        if (!_waits.Remove(m.Step, out var call)) return;
        Reply(() => call.Reply.TrySetException(StepActor.Unwrap(m.Error))); // the step fails as a step whose function threw
    }

    // Durability point: a wait is taken (and recorded) in Redis if what it waits for is there, else it is pending.
    private void CheckWait(string step)
    {
        if (_phase != Phase.Running || !_waits.TryGetValue(step, out var call)) return;
        call.Checking = true;
        _ctx.Store.WaitAsync(_run.Id, _run.Token, _run.Attempt, call.Request)
            .PipeTo(_self, success: a => new WaitChecked(step, a), failure: ex => new WaitCheckFailed(step, ex));
    }

    private void OnWaitChecked(WaitChecked m)
    {
        if (!_waits.TryGetValue(m.Step, out var call)) return;
        _ctx.Health.RedisOk();
        call.Checking = false;
        call.CheckAttempts = 0;
        var (wait, answer) = (call.Request, m.Answer);
        switch (answer.State)
        {
            case WaitState.Pending:
                call.DeadlineMs = answer.DeadlineMs;
                MaybeSuspend();
                return;
            case WaitState.Fenced:
                Trouble("Run {0}: wait '{1}' not taken: the lease was lost", _run.Id, wait.Step);
                OnLeaseLost();
                return;
        }
        _waits.Remove(m.Step);
        var recorded = answer.Recorded ?? answer.State switch
        {
            WaitState.Satisfied => new CachedStep(long.MaxValue, answer.Payload ?? RedflowJson.Null, wait.Kind),
            WaitState.TimedOut => new CachedStep(long.MaxValue, RedflowJson.Null, wait.Kind, TimedOut: true),
            _ => null,
        };
        if (recorded is not null)
        {
            _recorded[wait.Step] = recorded;
            Reply(() => Answer(call.Reply, wait, recorded));
        }
        else
        {
            var error = answer.State switch
            {
                // A failed or canceled child fails the step (not recorded: the parent's retry starts a fresh child).
                WaitState.ChildFailed => new RunFailedException(wait.Name!, RedisStore.ParseError(answer.Payload ?? "{}")),
                WaitState.ChildCanceled => new CanceledException(wait.Name!, string.IsNullOrEmpty(answer.Payload) ? null : answer.Payload),
                _ => new RedflowException($"Step '{wait.Step}': child run {wait.Name} does not exist (its retention passed?)."),
            };
            Reply(() => call.Reply.TrySetException(error));
        }
        MaybeSuspend();
    }

    private void OnWaitCheckFailed(WaitCheckFailed m)
    {
        if (!_waits.TryGetValue(m.Step, out var call)) return;
        call.Checking = false;
        // Retried in place while the lease lasts (the fence check ends the attempt when it does not).
        _ctx.Health.Failed($"taking wait '{m.Step}' of run {_run.Id}", m.Error);
        Timers.StartSingleTimer(TimerKeys.CheckWait(m.Step), new CheckWaitAgain(m.Step), Backoff.Delay(++call.CheckAttempts));
    }

    /// <summary>Answers a wait from its record: its result, or the timeout it recorded.</summary>
    private static void Answer(TaskCompletionSource<string> reply, WaitRequest wait, CachedStep recorded)
    {
        if (recorded.TimedOut) reply.TrySetException(new RedflowTimeoutException(wait.Kind == WaitKind.Child
            ? $"Step '{wait.Step}': child run {wait.Name} did not finish within {wait.Relative}."
            : $"Step '{wait.Step}': its {wait.Kind.ToString().ToLowerInvariant()} wait{(wait.Name is null ? "" : $" for '{wait.Name}'")} timed out after {wait.Relative}."));
        else reply.TrySetResult(recorded.Output);
    }

    private NonRetriableException KindChanged(string step, WaitKind? recorded, WaitKind? called) => new(
        $"Step '{step}' of run {_run.Id} was recorded as {KindText(recorded)} and is now called as {KindText(called)}: a step name " +
        "names one kind of step or wait (a changed workflow must use a new step name).");

    private static string KindText(WaitKind? kind) => kind switch
    {
        null => "a step (RunAsync)",
        WaitKind.Child => "a child workflow",
        WaitKind.Sleep => "a sleep",
        WaitKind.Signal => "a signal wait",
        _ => "an event wait",
    };

    // ---- suspension --------------------------------------------------------------------------------------

    /// <summary>Every unfinished handler call is a pending wait (none being checked, no step body running, no replayed result held).</summary>
    private bool AllWait()
    {
        if (_phase != Phase.Running || _runningSteps > 0 || _waits.Count == 0 || _held.Count > 0) return false;
        foreach (var call in _waits.Values)
            if (call.Checking) return false;
        return true;
    }

    /// <summary>Suspends the run when every unfinished call of its handler is a pending wait and its code has reached its awaits.</summary>
    private void MaybeSuspend()
    {
        if (_busy == 0 && AllWait()) Suspend();
    }

    // Durability point: suspension. One fenced script records every pending wait and releases lease, slot and cap; the
    // handler is left as it is (never completed, its token not canceled), so no exception reaches its code.
    private void Suspend()
    {
        if (_busy > 0 || !AllWait()) return;
        _phase = Phase.Suspending;
        var waits = _waits.Values.Select(c => new PendingWait(c.Request, c.DeadlineMs)).ToList();
        _ctx.Store.SuspendAsync(_run.Id, _run.Token, waits)
            .PipeTo(_self, success: o => new SuspendAnswered(o), failure: ex => new SuspendFailed(ex));
    }

    private void OnSuspendAnswered(SuspendOutcome outcome)
    {
        _ctx.Health.RedisOk();
        _suspendAttempts = 0;
        _phase = Phase.Running;
        switch (outcome)
        {
            case SuspendOutcome.Waiting:
                RedflowTelemetry.RunsSuspended.Add(1, RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue));
                _log.Debug("Run {0}: waiting on {1}", _run.Id, string.Join(", ", _waits.Keys));
                _stash.Clear();
                var resources = _scope?.Resources;
                if (resources is not null) _ = Task.Run(async () => await resources.DisposeAsync().ConfigureAwait(false));
                Finish(RunOutcome.Suspended);
                return;
            case SuspendOutcome.Fenced:
                Trouble("Run {0}: suspension not recorded: the lease was lost", _run.Id);
                OnLeaseLost();
                return;
        }
        // A wait can move on after all (a signal came in between): take it, and go on with what came meanwhile.
        foreach (var step in _waits.Keys.ToList()) CheckWait(step);
        Unstash();
    }

    private void OnSuspendFailed(Exception error)
    {
        _ctx.Health.Failed($"suspending run {_run.Id}", error);
        _phase = Phase.Running;
        Unstash();
        if (AllWait()) Timers.StartSingleTimer(TimerKeys.Suspend, new RetrySuspend(), Backoff.Delay(++_suspendAttempts));
    }

    private void Unstash()
    {
        var stashed = _stash.ToList();
        _stash.Clear();
        foreach (var message in stashed) OnTurnMessage(message);
    }

    // ---- replay order ------------------------------------------------------------------------------------

    /// <summary>
    /// Hands a recorded result back in the order results were recorded: one recorded after another that the handler has
    /// not asked for yet is held until it does (calls made together arrive within microseconds), so <c>Task.WhenAny</c>
    /// over recorded branches picks on replay what it picked the first time. A result is held at most <see cref="ReplayHold"/>
    /// (a workflow whose code changed may never ask for the earlier one).
    /// </summary>
    private void Replay(string step, CachedStep recorded, Action deliver)
    {
        if (_replayOrder.Length == 0 || recorded.Seq == long.MaxValue)
        {
            Reply(deliver);
            return;
        }
        _replayed.Add(step);
        ReleaseHeld((recorded.Seq, deliver), force: false);
    }

    private void ReleaseHeld((long Seq, Action Deliver)? arriving, bool force)
    {
        if (arriving is { } a) _held.Add(a);
        if (force)
            foreach (var (seq, _) in _held)
                foreach (var name in _replayOrder)
                    if (_recorded[name].Seq < seq) _replayed.Add(name); // never asked for: skipped
        while (_replayNext < _replayOrder.Length && _replayed.Contains(_replayOrder[_replayNext])) _replayNext++;
        var next = _replayNext < _replayOrder.Length ? _recorded[_replayOrder[_replayNext]].Seq : long.MaxValue;
        var due = _held.Where(h => h.Seq < next).OrderBy(h => h.Seq).Select(h => h.Deliver).ToList();
        _held.RemoveAll(h => h.Seq < next);
        // One work item for all of them, in order: each completes its call (and runs the handler up to its next
        // await) before the next one is completed.
        if (due.Count > 0) Reply(due);
        if (_held.Count > 0) Timers.StartSingleTimer(TimerKeys.ReplayHold, new ReplayHoldPassed(), ReplayHold);
        else Timers.Cancel(TimerKeys.ReplayHold);
        MaybeSuspend();
    }

    private void OnHandlerSucceeded(HandlerSucceeded m)
    {
        switch (_stop.Reason)
        {
            case StopReason.LeaseLost:
                Finish(RunOutcome.LeaseLost);
                return;
            case StopReason.CancelRequested:
                RecordCanceled();
                return;
        }
        var size = System.Text.Encoding.UTF8.GetByteCount(m.Output);
        if (size > _ctx.Options.MaxPayloadBytes)
        {
            OnHandlerFailed(new NonRetriableException($"The output of workflow '{_run.Workflow}' is {size} bytes of JSON; the limit is {_ctx.Options.MaxPayloadBytes} (StartWorkerOptions.MaxPayloadBytes)."));
            return;
        }
        // Durability point: the run succeeds with its output, fenced by the lease token. The same script claims
        // the next ready run for this slot (one round trip instead of two); the poller starts it.
        var next = _ctx.Lifecycle.Draining ? null
            : _ctx.NextRun;
        var (store, runId, token) = (_ctx.Store, _run.Id, _run.Token);
        Record(RunOutcome.Completed, async () =>
        {
            var sentAt = WorkerContext.Now();
            var (outcome, runs) = await store.CompleteAsync(runId, token, m.Output, next).ConfigureAwait(false);
            return new OutcomeWritten(outcome, Next: runs, SentAt: sentAt, ReceivedAt: WorkerContext.Now());
        });
    }

    private void OnHandlerFailed(Exception error)
    {
        switch (_stop.Reason)
        {
            case StopReason.LeaseLost:
                Finish(RunOutcome.LeaseLost); // another worker owns the run: record nothing
                return;
            case StopReason.CancelRequested:
                RecordCanceled();
                return;
            case StopReason.WorkerStopping:
                HandBack();
                return;
        }
        var retriable = error is not (NonRetriableException or InputValidationException);
        var delay = _definition.Options.Retry.DelayAfter(_run.Attempt);
        var step = _failedStep is { } f && ReferenceEquals(f.Error, error) ? f : _failedStep;
        _log.Warning(error, "Run {0} ({1}) attempt {2}/{3} failed", _run.Id, _run.Workflow, _run.Attempt, _run.MaxAttempts);
        // Durability point: the durable retry. The script counts the attempt and schedules the next one
        // after the backoff, or fails the run for good.
        var runError = RunError.From(error);
        var (store, onFailure, run, lease) = (_ctx.Store, _onFailure, _run, _ctx.Options.Lease);
        var pending = new PendingOnFailure(new RunInfo(run.Id, run.Workflow, run.Queue, run.Attempt, run.MaxAttempts), run.Input, runError);
        var hasOnFailure = _definition.Options.OnFailure is not null;
        Record(RunOutcome.Failed, async () =>
        {
            var result = await store.FailAsync(new AttemptFailure(run.Id, run.Token, runError, run.Attempt)
            {
                Retriable = retriable, Delay = delay, FailedStep = step?.Name, StepRan = step?.Ran ?? TimeSpan.Zero, Lease = lease,
            }).ConfigureAwait(false);
            if (result is { Outcome: WriteOutcome.Ok, WillRetry: false } && hasOnFailure)
                onFailure.Tell(new CallOnFailure(pending)); // recorded as pending by the same script: made at least once
            return new OutcomeWritten(result.Outcome, result.WillRetry);
        });
    }

    private void RecordCanceled()
    {
        var (store, runId, token) = (_ctx.Store, _run.Id, _run.Token);
        Record(RunOutcome.Canceled, async () =>
            new OutcomeWritten(await store.CancelAsync(runId, null, token).ConfigureAwait(false) ? WriteOutcome.Ok : WriteOutcome.Fenced));
    }

    // Durability point: hand-back. The run goes back to the front of its queue unfinished, its attempt unchanged.
    private void HandBack()
    {
        var (store, runId, token) = (_ctx.Store, _run.Id, _run.Token);
        Record(RunOutcome.HandedBack, async () =>
            new OutcomeWritten(await store.HandBackAsync(runId, token, TimeSpan.Zero).ConfigureAwait(false)));
    }

    /// <summary>Chooses the run's outcome (once) and writes it; a Redis error is retried in place until the lease runs out.</summary>
    private void Record(RunOutcome outcome, Func<Task<OutcomeWritten>> write)
    {
        if (_phase is Phase.Recording or Phase.Idle) return;
        _phase = Phase.Recording;
        _outcome = outcome;
        _write = write;
        Write();
    }

    private void Write() =>
        _write!().PipeTo(_self, failure: ex => new OutcomeFailed(ex));

    private void OnOutcomeWritten(OutcomeWritten m)
    {
        _ctx.Health.RedisOk();
        if (m.Outcome == WriteOutcome.Fenced)
            _log.Warning("Run {0}: {1} not recorded: the lease was lost", _run.Id, _outcome);
        else if (m.Outcome == WriteOutcome.Ok)
            CountOutcome(m.WillRetry);
        _activity?.SetTag("redflow.outcome", m.Outcome == WriteOutcome.Fenced ? "fenced" : OutcomeTag(_outcome!.Value));
        Finish(_outcome!.Value, m);
    }

    private void CountOutcome(bool willRetry)
    {
        var tags = RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue);
        switch (_outcome)
        {
            case RunOutcome.Completed: RedflowTelemetry.RunsSucceeded.Add(1, tags); break;
            case RunOutcome.Canceled: RedflowTelemetry.RunsCanceled.Add(1, tags); break;
            case RunOutcome.Failed: (willRetry ? RedflowTelemetry.RunsRetried : RedflowTelemetry.RunsFailed).Add(1, tags); break;
        }
    }

    private void OnOutcomeFailed(OutcomeFailed m)
    {
        _ctx.Health.Failed($"recording the outcome ({_outcome}) of run {_run.Id}", m.Error);
        if (WorkerContext.Until(_localDeadline) <= TimeSpan.Zero)
        {
            Trouble("Run {0}: could not record {1} before the lease ran out; another worker will take the run", _run.Id, _outcome);
            Finish(RunOutcome.LeaseLost);
            return;
        }
        Timers.StartSingleTimer(TimerKeys.RetryOutcome, new RetryOutcome(), Backoff.Delay(++_writeAttempts));
    }

    private void OnLeaseRenewed(LeaseRenewed m)
    {
        _localDeadline = Math.Max(_localDeadline, m.LocalDeadline);
        if (_phase == Phase.AwaitingLease)
        {
            if (WorkerContext.Until(_localDeadline) - _ctx.FenceMargin > TimeSpan.Zero) StartHandler();
            return;
        }
        ScheduleFenceCheck();
    }

    private void ScheduleFenceCheck()
    {
        var due = WorkerContext.Until(_localDeadline) - _ctx.FenceMargin;
        Timers.StartSingleTimer(TimerKeys.Fence, new FenceCheck(), due > TimeSpan.Zero ? due : TimeSpan.Zero);
    }

    private void CheckFence()
    {
        if (_phase is not (Phase.Running or Phase.Suspending or Phase.Recording)) return;
        if (WorkerContext.Until(_localDeadline) - _ctx.FenceMargin > TimeSpan.Zero)
        {
            ScheduleFenceCheck();
            return;
        }
        // Self-fencing: the lease could not be renewed in time; stop before another worker can take the run.
        // Redis not answering renewals in time is an outage as far as this worker can tell: the first fence reports it.
        _ctx.Health.Failed("renewing leases", new TimeoutException("the lease renewals were not answered in time"));
        Trouble("Run {0}: lease not renewed in time; canceling the handler (lease lost)", _run.Id);
        OnLeaseLost();
    }

    private void OnLeaseLost()
    {
        _stop.Request(StopReason.LeaseLost);
        Finish(RunOutcome.LeaseLost);
    }

    /// <summary>
    /// Logs a run's trouble: a warning while Redis is reachable, else at info level, since the worker has
    /// logged the outage once already (an outage then costs a line per worker, not one per run).
    /// </summary>
    private void Trouble(string format, params object?[] args)
    {
        if (_ctx.Health.RedisConnected) _log.Warning(format, args);
        else _log.Info(format, args);
    }

    /// <summary>
    /// Ends the run's attempt on this actor: the lease untracked, this turn's timers canceled, and the poller told (with
    /// the run a completion claimed for the slot, from <paramref name="written"/>); the actor is idle until its next run.
    /// </summary>
    private void Finish(RunOutcome outcome, OutcomeWritten? written = null)
    {
        if (_phase == Phase.Idle) return;
        _phase = Phase.Idle;
        _outcome ??= outcome;
        RedflowTelemetry.RunDuration.Record((-WorkerContext.Until(_started)).TotalMilliseconds, RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue));
        if (outcome is RunOutcome.LeaseLost or RunOutcome.Suspended) _activity?.SetTag("redflow.outcome", OutcomeTag(outcome));
        if (_outcome == RunOutcome.Failed || outcome == RunOutcome.LeaseLost)
            _activity?.SetStatus(ActivityStatusCode.Error, outcome == RunOutcome.LeaseLost ? "lease lost" : "failed");
        _activity?.Dispose();
        _renewer.Tell(new UntrackLease(_run.Id, _run.Token));
        Timers.CancelAll();
        // Exactly once per run. The run the completion claimed for this slot, of this actor's queue and a workflow this
        // worker has, starts here at once (the poller is told it holds it now); any other goes through the poller,
        // which passes the slot on (to this actor, idle again) or frees it.
        if (written is { Next: [var next] } && next.Queue == _run.Queue && !_ctx.Lifecycle.Draining
            && _ctx.Workflows.TryGetValue(next.Workflow, out var definition))
        {
            var start = StartRun.On(Self, _ctx, next, definition, written.SentAt, written.ReceivedAt);
            Context.Parent.Tell(new RunEnded(_run.Id, _run.Token, [], Pooled: false, ContinuedWith: start));
            Begin(start);
            return;
        }
        Context.Parent.Tell(new RunEnded(_run.Id, _run.Token, written?.Next ?? [], written?.SentAt ?? 0, written?.ReceivedAt ?? 0, Pooled: true));
    }

    /// <summary>The outcome as the run span's <c>redflow.outcome</c> tag.</summary>
    private static string OutcomeTag(RunOutcome outcome) => outcome switch
    {
        RunOutcome.Completed => "complete",
        RunOutcome.Failed => "fail",
        RunOutcome.Canceled => "cancel",
        RunOutcome.HandedBack => "hand back",
        RunOutcome.Suspended => "suspended",
        _ => "lease lost",
    };
}
