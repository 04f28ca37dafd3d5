using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Akka.Actor;
using Akka.Event;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>Told to a RunActor: stop the handler for this reason (the worker is stopping).</summary>
internal sealed record StopRun(StopReason Reason);

/// <summary>Told to the poller by a RunActor that completed its run and claimed the next one for its slot.</summary>
internal sealed record NextRunClaimed(IReadOnlyList<ClaimedRun> Runs, long SentAt);

/// <summary>Told to a RunActor by its handler's step: the run now waits on a child (suspended in Redis).</summary>
internal sealed record RunSuspended
{
    public static readonly RunSuspended Instance = new();
}

/// <summary>Ends a handler whose run was suspended on a child; the run replays when the child finishes.</summary>
internal sealed class RunSuspendedException(string runId, string childRunId)
    : Exception($"Run {runId} is waiting on child run {childRunId}.");

/// <summary>
/// Owns one leased run: starts its handler as a task, serves its steps (cached results from the claim, or a
/// StepActor per new step), keeps a local lease deadline from the renewals and cancels its own handler
/// before that deadline passes (self-fencing), and records the outcome with one fenced script:
/// complete, fail-or-retry, cancel or hand back. The run's fate follows <see cref="StopReason"/>, never
/// the exception type. It is never restarted (a restart would leave the old handler running beside a new
/// one); if it faults, its supervisor stops it and <see cref="PostStop"/> hands the run back.
/// </summary>
internal sealed class RunActor : UntypedActor, IWithTimers
{
    private sealed record HandlerSucceeded(string Output);
    private sealed record HandlerFailed(Exception Error);
    private sealed record FenceCheck;
    private sealed record HandBackNow;
    private sealed record OutcomeWritten(WriteOutcome Outcome);
    private sealed record OutcomeFailed(Exception Error);
    private sealed record RetryOutcome;

    /// <summary>How long a handler told to stop (worker stopping) may take before the run is handed back anyway.</summary>
    internal static readonly TimeSpan StopWait = TimeSpan.FromSeconds(5);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private readonly ClaimedRun _run;
    private readonly WorkflowDefinition _definition;
    private readonly IActorRef _renewer;
    private readonly IActorRef _onFailure;
    private readonly RunStop _stop = new();
    private readonly Dictionary<string, string> _cache;
    private long _localDeadline;
    private int _stepCount;
    private StepFailed? _failedStep;
    private Func<Task<WriteOutcome>>? _outcome; // the outcome being recorded, once chosen
    private string _outcomeName = "";
    private int _outcomeAttempts;
    private bool _finished;
    private Activity? _activity;
    private bool _willRetry;
    private bool _suspended;
    private readonly long _started = WorkerContext.Now();

    public RunActor(WorkerContext ctx, ClaimedRun run, WorkflowDefinition definition, IActorRef renewer, IActorRef onFailure, long claimSentAt)
    {
        _ctx = ctx;
        _run = run;
        _definition = definition;
        _renewer = renewer;
        _onFailure = onFailure;
        _cache = new Dictionary<string, string>(run.CachedSteps, StringComparer.Ordinal);
        _localDeadline = WorkerContext.After(claimSentAt, ctx.Options.Lease);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    // One switch instead of ReceiveActor's handler table: this actor is created once per run, and building
    // the table is a measurable part of a run's cost on the worker.
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case RunStep m: OnRunStep(m); break;
            case StepRecorded m: _cache[m.Name] = m.Output; break;
            case StepFailed m: _failedStep = m; break;
            case HandlerSucceeded m: OnHandlerSucceeded(m); break;
            case HandlerFailed m: OnHandlerFailed(StepActor.Unwrap(m.Error)); break;
            case LeaseRenewed m:
                _localDeadline = Math.Max(_localDeadline, m.LocalDeadline);
                ScheduleFenceCheck();
                break;
            case FenceCheck: CheckFence(); break;
            case LeaseLost: OnLeaseLost(); break;
            case RunSuspended:
                // Waiting on a child: the script released the lease; this attempt's handler ends here, nothing more to record.
                _activity?.SetTag("redflow.outcome", "suspended");
                _stop.Request(StopReason.LeaseLost);
                _suspended = true;
                Finish();
                break;
            case CancelRequested:
                if (_stop.Request(StopReason.CancelRequested)) _log.Info("Run {0}: cancel requested, handler token canceled", _run.Id);
                break;
            case StopRun m:
                _stop.Request(m.Reason);
                // A handler that ignores its token is not waited for forever: the run is handed back.
                Timers.StartSingleTimer("stop-wait", new HandBackNow(), StopWait);
                break;
            case HandBackNow: Record("hand back", () => _ctx.Store.HandBackAsync(_run.Id, _run.Token, TimeSpan.Zero)); break;
            case OutcomeWritten m: OnOutcomeWritten(m); break;
            case OutcomeFailed m: OnOutcomeFailed(m); break;
            case RetryOutcome: WriteOutcome(); break;
            default: Unhandled(message); break;
        }
    }

    /// <summary>Step actors own no handler; one that faults is stopped (its handler call fails, see StepActor.PostStop).</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    protected override void PreStart()
    {
        _renewer.Tell(new TrackLease(_run.Id, _run.Token, Self));
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

    protected override void PostStop()
    {
        if (_finished) return;
        _activity?.Dispose();
        // Stopped without an outcome (a fault, or the actor system shutting down): hand the run back.
        _renewer.Tell(new UntrackLease(_run.Id, _run.Token));
        _stop.Request(StopReason.WorkerStopping);
        var log = _log;
        var runId = _run.Id;
        _ = _ctx.Store.HandBackAsync(_run.Id, _run.Token, TimeSpan.Zero).ContinueWith(
            t => log.Warning(t.Exception, "Run {0}: hand-back after a fault failed; the reaper will take it back", runId),
            TaskContinuationOptions.OnlyOnFaulted);
    }

    private void OnRunStep(RunStep step)
    {
        if (_outcome is not null || _stop.Reason == StopReason.LeaseLost)
        {
            step.Reply.TrySetException(new LeaseLostException(_run.Id));
            return;
        }
        // Durability point: a step recorded in an earlier attempt is served from the record, never run again.
        if (_cache.TryGetValue(step.Name, out var cached))
        {
            step.Reply.TrySetResult(cached);
            return;
        }
        Context.ActorOf(Props.Create<StepActor>(_ctx, _run, step, _stop.Token), "step-" + ++_stepCount);
    }

    private void OnHandlerSucceeded(HandlerSucceeded m)
    {
        switch (_stop.Reason)
        {
            case StopReason.LeaseLost:
                Finish();
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
        var poller = Context.Parent;
        var self = Self;
        Record("complete", async () =>
        {
            var sentAt = WorkerContext.Now();
            var (outcome, runs) = await _ctx.Store.CompleteAsync(_run.Id, _run.Token, m.Output, next).ConfigureAwait(false);
            if (runs.Count > 0) poller.Tell(new NextRunClaimed(runs, sentAt), self);
            return outcome;
        });
    }

    private void OnHandlerFailed(Exception error)
    {
        switch (_stop.Reason)
        {
            case StopReason.LeaseLost:
                Finish(); // another worker owns the run: record nothing
                return;
            case StopReason.CancelRequested:
                RecordCanceled();
                return;
            case StopReason.WorkerStopping:
                Record("hand back", () => _ctx.Store.HandBackAsync(_run.Id, _run.Token, TimeSpan.Zero));
                return;
        }
        var retriable = error is not (NonRetriableException or InputValidationException);
        var delay = _definition.Options.Retry.DelayAfter(_run.Attempt);
        var step = _failedStep is { } f && ReferenceEquals(f.Error, error) ? f : _failedStep;
        _log.Warning(error, "Run {0} ({1}) attempt {2}/{3} failed", _run.Id, _run.Workflow, _run.Attempt, _run.MaxAttempts);
        // Durability point: the durable retry. The script counts the attempt and schedules the next one
        // after the backoff, or fails the run for good.
        var runError = RunError.From(error);
        var onFailure = _onFailure;
        var pending = new PendingOnFailure(new RunInfo(_run.Id, _run.Workflow, _run.Queue, _run.Attempt, _run.MaxAttempts), _run.Input, runError);
        var hasOnFailure = _definition.Options.OnFailure is not null;
        Record("fail", async () =>
        {
            var result = await _ctx.Store.FailAsync(_run.Id, _run.Token, runError, retriable, delay,
                step?.Name, _run.Attempt, step?.Ran ?? TimeSpan.Zero, _ctx.Options.Lease).ConfigureAwait(false);
            _willRetry = result.WillRetry;
            if (result is { Outcome: Protocol.WriteOutcome.Ok, WillRetry: false } && hasOnFailure)
                onFailure.Tell(new CallOnFailure(pending)); // recorded as pending by the same script: made at least once
            return result.Outcome;
        });
    }

    private void RecordCanceled() =>
        Record("cancel", async () =>
            await _ctx.Store.CancelAsync(_run.Id, null, _run.Token).ConfigureAwait(false)
                ? Protocol.WriteOutcome.Ok : Protocol.WriteOutcome.Fenced);

    /// <summary>Chooses the run's outcome (once) and writes it; a Redis error is retried in place until the lease runs out.</summary>
    private void Record(string name, Func<Task<WriteOutcome>> write)
    {
        if (_outcome is not null || _finished) return;
        _outcome = write;
        _outcomeName = name;
        WriteOutcome();
    }

    private void WriteOutcome() =>
        _outcome!().PipeTo(Self, success: o => new OutcomeWritten(o), failure: ex => new OutcomeFailed(ex));

    private void OnOutcomeWritten(OutcomeWritten m)
    {
        if (m.Outcome == Protocol.WriteOutcome.Fenced)
            _log.Warning("Run {0}: {1} not recorded: the lease was lost", _run.Id, _outcomeName);
        else if (m.Outcome == Protocol.WriteOutcome.Ok)
            CountOutcome();
        _activity?.SetTag("redflow.outcome", m.Outcome == Protocol.WriteOutcome.Fenced ? "fenced" : _outcomeName);
        Finish();
    }

    private void CountOutcome()
    {
        var tags = RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue);
        switch (_outcomeName)
        {
            case "complete": RedflowTelemetry.RunsSucceeded.Add(1, tags); break;
            case "cancel": RedflowTelemetry.RunsCanceled.Add(1, tags); break;
            case "fail": (_willRetry ? RedflowTelemetry.RunsRetried : RedflowTelemetry.RunsFailed).Add(1, tags); break;
        }
    }

    private void OnOutcomeFailed(OutcomeFailed m)
    {
        if (WorkerContext.Until(_localDeadline) <= TimeSpan.Zero)
        {
            _log.Error(m.Error, "Run {0}: could not record {1} before the lease ran out; another worker will resume the run", _run.Id, _outcomeName);
            Finish();
            return;
        }
        var delay = Backoff.Delay(++_outcomeAttempts);
        _log.Warning(m.Error, "Run {0}: recording {1} failed; retrying in {2}", _run.Id, _outcomeName, delay);
        Timers.StartSingleTimer("retry-outcome", new RetryOutcome(), delay);
    }

    private void ScheduleFenceCheck()
    {
        var due = WorkerContext.Until(_localDeadline) - _ctx.FenceMargin;
        Timers.StartSingleTimer("fence", new FenceCheck(), due > TimeSpan.Zero ? due : TimeSpan.Zero);
    }

    private void CheckFence()
    {
        if (WorkerContext.Until(_localDeadline) - _ctx.FenceMargin > TimeSpan.Zero)
        {
            ScheduleFenceCheck();
            return;
        }
        // Self-fencing: the lease could not be renewed in time; stop before another worker can take the run.
        _log.Warning("Run {0}: lease not renewed in time; canceling the handler (lease lost)", _run.Id);
        OnLeaseLost();
    }

    private void OnLeaseLost()
    {
        _stop.Request(StopReason.LeaseLost);
        Finish();
    }

    private void Finish()
    {
        if (_finished) return;
        _finished = true;
        RedflowTelemetry.RunDuration.Record((-WorkerContext.Until(_started)).TotalMilliseconds, RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue));
        if (_outcomeName == "fail" || (_stop.Reason == StopReason.LeaseLost && !_suspended)) _activity?.SetStatus(ActivityStatusCode.Error, _outcomeName == "fail" ? "failed" : "lease lost");
        _activity?.Dispose();
        _renewer.Tell(new UntrackLease(_run.Id, _run.Token));
        Context.Stop(Self);
    }

    /// <summary>The steps of a run on a worker: each call goes to the RunActor (cache or StepActor).</summary>
    private sealed class ActorStepApi(IActorRef run, CancellationToken token, WorkerContext ctx, ClaimedRun claimed) : StepApi
    {
        protected override string Workflow => claimed.Workflow;

        protected override async Task<string> ExecuteAsync(string name, Func<CancellationToken, Task<string>> invoke, StepOptions? options)
        {
            var reply = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            run.Tell(new RunStep(name, invoke, options, reply, Activity.Current));
            await using var _ = token.Register(() => reply.TrySetCanceled(token));
            return await reply.Task.ConfigureAwait(false);
        }

        /// <summary>
        /// Starts the child once (its id is derived from parent, step and attempt, or found by the caller's
        /// idempotency key) and waits for it. A finished child answers at once; otherwise the parent is
        /// suspended (Waiting: no lease, no slot) and this attempt's handler ends here; the child's end
        /// requeues the parent, which replays with this step answered from the child's output.
        /// </summary>
        protected override async Task<string> RunChildAsync(string name, string workflow, object? input, ChildWorkflowOptions options)
        {
            if (claimed.CachedSteps.TryGetValue(name, out var cached)) return cached;
            var childId = await EmitChildRunAsync(name, workflow, input, options, token).ConfigureAwait(false);
            var (outcome, payload) = await ctx.Store.AwaitChildAsync(claimed.Id, claimed.Token, name, childId, claimed.Attempt, options.Timeout).ConfigureAwait(false);
            switch (outcome)
            {
                case ChildOutcome.Succeeded:
                    return payload ?? RedflowJson.Null;
                case ChildOutcome.Failed:
                    throw new RunFailedException(childId, RedisStore.ParseError(payload ?? "{}"));
                case ChildOutcome.Canceled:
                    throw new CanceledException(childId, string.IsNullOrEmpty(payload) ? null : payload);
                case ChildOutcome.TimedOut:
                    throw new RedflowTimeoutException($"Step '{name}': child run {childId} ({workflow}) did not finish within {options.Timeout}.");
                case ChildOutcome.Waiting:
                    run.Tell(RunSuspended.Instance);
                    throw new RunSuspendedException(claimed.Id, childId);
                case ChildOutcome.Missing:
                    throw new RedflowException($"Step '{name}': child run {childId} does not exist (its retention passed?).");
                default:
                    run.Tell(LeaseLost.Instance);
                    throw new LeaseLostException(claimed.Id);
            }
        }

        private Task<string> EmitChildRunAsync(string name, string workflow, object? input, ChildWorkflowOptions options, CancellationToken ct)
        {
            var emit = new EmitOptions { IdempotencyKey = options.IdempotencyKey, RunAt = options.RunAt, Queue = options.Queue };
            return ctx.Client.EmitAsync(workflow, ctx.Client.SerializeInput(workflow, input), emit, null, null,
                claimed.Id, null, ct, RunIds.Child(claimed.Id, name, claimed.Attempt));
        }

        /// <summary>
        /// Emits the child as a step. Its run id is derived from (parent, step, attempt), so a repeat of this
        /// attempt (a crash between the emit and the step record) finds the same child instead of a second one.
        /// </summary>
        protected override async Task<string> EmitChildAsync(string name, string workflow, object? input, ChildWorkflowOptions options)
        {
            var json = await ExecuteAsync(name, async ct =>
                System.Text.Json.JsonSerializer.Serialize(await EmitChildRunAsync(name, workflow, input, options, ct).ConfigureAwait(false)), null).ConfigureAwait(false);
            return ReadResult<string>(name, json);
        }
    }
}
