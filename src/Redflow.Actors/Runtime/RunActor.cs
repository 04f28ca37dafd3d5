using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>Told to a RunActor by its handler (through <see cref="ActorStepApi"/>): run step <paramref name="Name"/>, or answer it from the record; the answer goes to <paramref name="Reply"/> (local only).</summary>
internal sealed record RunStep(string Name, Func<CancellationToken, Task<string>> Invoke, StepOptions? Options, TaskCompletionSource<string> Reply, Activity? Activity = null);

/// <summary>Told to a RunActor by its StepActor: the step's result is recorded in Redis (cached for this attempt).</summary>
internal sealed record StepRecorded(string Name, string Output);

/// <summary>Told to a RunActor by its StepActor: the step's function failed (recorded with the run's failure).</summary>
internal sealed record StepFailed(string Name, Exception Error, TimeSpan Ran);

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

/// <summary>Told to a RunActor by its handler's step API: the run now waits on a child (suspended in Redis).</summary>
internal sealed record RunSuspended
{
    public static readonly RunSuspended Instance = new();
}

/// <summary>Ends a handler whose run was suspended on a child; the run replays when the child finishes.</summary>
internal sealed class RunSuspendedException(string runId, string childRunId)
    : Exception($"Run {runId} is waiting on child run {childRunId}.");

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
    /// <summary>Waiting on a child: the suspension was recorded by the step (await_child.lua); nothing more to write.</summary>
    Suspended,
    /// <summary>Its lease is gone: another worker owns the run; nothing is written.</summary>
    LeaseLost,
}

/// <summary>
/// Owns one leased run: starts its handler as a task, serves its steps (recorded results from the claim, or a
/// StepActor per new step), keeps a local lease deadline from the renewals and cancels its own handler
/// before that deadline passes (self-fencing), and records the outcome with one fenced script:
/// complete, fail-or-retry, cancel or hand back. The run's fate follows <see cref="StopReason"/>, never
/// the exception type. It is never restarted (a restart would leave the old handler running beside a new
/// one); if it faults, its supervisor stops it and <see cref="PostStop"/> hands the run back.
/// </summary>
internal sealed class RunActor : UntypedActor, IWithTimers
{
    /// <summary>Where the actor stands; each message is handled by what it means in the current phase.</summary>
    private enum Phase
    {
        /// <summary>The claim's answer left too little of the lease to start the handler: waiting for the renewer to confirm (or lose) the lease.</summary>
        AwaitingLease,
        /// <summary>The handler runs and its steps are served.</summary>
        Running,
        /// <summary>An outcome was chosen and is being written (retried in place while the lease lasts).</summary>
        Recording,
        /// <summary>The attempt is over; the actor is stopping.</summary>
        Finished,
    }

    private sealed record HandlerSucceeded(string Output);
    private sealed record HandlerFailed(Exception Error);
    private sealed record FenceCheck;
    private sealed record HandBackNow;
    private sealed record OutcomeWritten(WriteOutcome Outcome, bool WillRetry = false, IReadOnlyList<ClaimedRun>? Next = null, long SentAt = 0, long ReceivedAt = 0);
    private sealed record OutcomeFailed(Exception Error);
    private sealed record RetryOutcome;

    /// <summary>The actor's timers: the self-fencing check, the wait for a stopping handler, the retry of a failed outcome write.</summary>
    private static class TimerKeys
    {
        public const string Fence = "fence";
        public const string StopWait = "stop-wait";
        public const string RetryOutcome = "retry-outcome";
    }

    /// <summary>How long a handler told to stop (worker stopping) may take before the run is handed back anyway.</summary>
    internal static readonly TimeSpan StopWait = TimeSpan.FromSeconds(5);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private readonly ClaimedRun _run;
    private readonly WorkflowDefinition _definition;
    private readonly IActorRef _renewer;
    private readonly IActorRef _onFailure;
    private readonly RunStop _stop = new();
    private readonly Dictionary<string, string> _recorded;
    private readonly long _started = WorkerContext.Now();
    private long _localDeadline;
    private Phase _phase = Phase.Running;
    private RunOutcome? _outcome;
    private Func<Task<OutcomeWritten>>? _write; // the outcome's write, repeated in place on a Redis error
    private int _writeAttempts;
    private int _stepCount;
    private StepFailed? _failedStep;
    private Activity? _activity;
    private OutcomeWritten? _written; // with the run a completion claimed for this slot, told to the poller as the actor stops

    /// <summary>A RunActor for a run leased until <paramref name="localDeadline"/>, a local monotonic timestamp (<see cref="WorkerContext.LeaseDeadline"/>).</summary>
    public RunActor(WorkerContext ctx, ClaimedRun run, WorkflowDefinition definition, IActorRef renewer, IActorRef onFailure, long localDeadline)
    {
        _ctx = ctx;
        _run = run;
        _definition = definition;
        _renewer = renewer;
        _onFailure = onFailure;
        _recorded = new Dictionary<string, string>(run.CachedSteps, StringComparer.Ordinal);
        _localDeadline = localDeadline;
    }

    public ITimerScheduler Timers { get; set; } = null!;

    // One switch instead of ReceiveActor's handler table: this actor is created once per run, and building
    // the table is a measurable part of a run's cost on the worker.
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case RunStep m: OnRunStep(m); break;
            case StepRecorded m: _recorded[m.Name] = m.Output; break;
            case StepFailed m: _failedStep = m; break;
            case HandlerSucceeded m: OnHandlerSucceeded(m); break;
            case HandlerFailed m: OnHandlerFailed(StepActor.Unwrap(m.Error)); break;
            case LeaseRenewed m: OnLeaseRenewed(m); break;
            case FenceCheck: CheckFence(); break;
            case LeaseLost: OnLeaseLost(); break;
            case RunSuspended:
                // Waiting on a child: the script released the lease; this attempt's handler ends here, nothing more to record.
                _stop.Request(StopReason.LeaseLost);
                Finish(RunOutcome.Suspended);
                break;
            case CancelRequested:
                if (_phase == Phase.AwaitingLease) RecordCanceled();
                else if (_stop.Request(StopReason.CancelRequested)) _log.Info("Run {0}: cancel requested, handler token canceled", _run.Id);
                break;
            case StopRun when _phase == Phase.AwaitingLease:
                HandBack();
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

    /// <summary>Step actors own no handler; one that faults is stopped (its handler call fails, see StepActor.PostStop).</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    protected override void PreStart()
    {
        _renewer.Tell(new TrackLease(_run.Id, _run.Token, Self));
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
        if (_phase != Phase.Finished)
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
        }
        // Exactly once per RunActor, whatever ended it: the poller frees the slot or passes it on to the next run.
        Context.Parent.Tell(new RunEnded(_run.Id, _run.Token, _written?.Next ?? [], _written?.SentAt ?? 0, _written?.ReceivedAt ?? 0));
    }

    private void StartHandler()
    {
        _phase = Phase.Running;
        ScheduleFenceCheck();
        RedflowTelemetry.RunsStarted.Add(1, RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue));
        var info = new RunInfo(_run.Id, _run.Workflow, _run.Queue, _run.Attempt, _run.MaxAttempts);
        var scope = new RunScope(info, _stop, new ActorStepApi(Self, _stop.Token, _ctx, _run), _ctx.Options.Services);
        // The run's span continues the trace of the code that emitted it. It becomes the current activity (and a log
        // scope carries the run's ids) only inside the handler's task: the actor's own thread is left as it was.
        var previous = Activity.Current;
        ActivityContext.TryParse(_run.TraceParent, null, isRemote: true, out var parent);
        _activity = RedflowTelemetry.Source.StartActivity("redflow.run", ActivityKind.Consumer, parent,
            RedflowTelemetry.RunTags(_run.Id, _run.Workflow, _run.Queue, _run.Attempt));
        using (_ctx.LogScope(_run))
        {
            // The handler runs as a task off the actor's thread; its outcome comes back as a message.
            Task.Run(() => _definition.ExecuteAsync(_run.Input, scope))
                .PipeTo(Self, success: output => new HandlerSucceeded(output), failure: ex => new HandlerFailed(ex));
        }
        Activity.Current = previous;
    }

    private void OnRunStep(RunStep step)
    {
        if (_phase != Phase.Running || _stop.Reason == StopReason.LeaseLost)
        {
            step.Reply.TrySetException(new LeaseLostException(_run.Id));
            return;
        }
        // Durability point: a step recorded in an earlier attempt is served from the record, never run again.
        if (_recorded.TryGetValue(step.Name, out var recorded))
        {
            step.Reply.TrySetResult(recorded);
            return;
        }
        Context.ActorOf(Props.Create<StepActor>(_ctx, _run, step, _stop.Token), "step-" + ++_stepCount);
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
            : new NextRunRequest(_ctx.Options.Lease, _ctx.Node, _ctx.Options.EffectiveQueues);
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
        if (_phase is Phase.Recording or Phase.Finished) return;
        _phase = Phase.Recording;
        _outcome = outcome;
        _write = write;
        Write();
    }

    private void Write() =>
        _write!().PipeTo(Self, failure: ex => new OutcomeFailed(ex));

    private void OnOutcomeWritten(OutcomeWritten m)
    {
        _ctx.Health.RedisOk();
        _written = m;
        if (m.Outcome == WriteOutcome.Fenced)
            _log.Warning("Run {0}: {1} not recorded: the lease was lost", _run.Id, _outcome);
        else if (m.Outcome == WriteOutcome.Ok)
            CountOutcome(m.WillRetry);
        _activity?.SetTag("redflow.outcome", m.Outcome == WriteOutcome.Fenced ? "fenced" : OutcomeTag(_outcome!.Value));
        Finish(_outcome!.Value);
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
        if (_phase != Phase.Running && _phase != Phase.Recording) return;
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

    private void Finish(RunOutcome outcome)
    {
        if (_phase == Phase.Finished) return;
        _phase = Phase.Finished;
        _outcome ??= outcome;
        RedflowTelemetry.RunDuration.Record((-WorkerContext.Until(_started)).TotalMilliseconds, RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue));
        if (outcome is RunOutcome.LeaseLost or RunOutcome.Suspended) _activity?.SetTag("redflow.outcome", OutcomeTag(outcome));
        if (_outcome == RunOutcome.Failed || outcome == RunOutcome.LeaseLost)
            _activity?.SetStatus(ActivityStatusCode.Error, outcome == RunOutcome.LeaseLost ? "lease lost" : "failed");
        _activity?.Dispose();
        _renewer.Tell(new UntrackLease(_run.Id, _run.Token));
        Context.Stop(Self);
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
