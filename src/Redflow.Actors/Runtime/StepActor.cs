using Akka.Actor;
using Microsoft.Extensions.Logging;
using Akka.Event;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>
/// One step call that was not served from the cache: runs the step function (off the actor thread),
/// records its result with the run's fencing token, then answers the handler. A Redis error while
/// recording is retried in place with backoff for as long as the run's token stands; a fenced write
/// means the lease is gone, and the RunActor is told.
/// </summary>
internal sealed class StepActor : UntypedActor, IWithTimers
{
    private sealed record FunctionDone(string Output);
    private sealed record FunctionFailed(Exception Error);
    private sealed record Recorded(WriteOutcome Outcome, string Output);
    private sealed record RecordFailed(Exception Error);
    private sealed record RetryRecord;

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private readonly ClaimedRun _run;
    private readonly RunStep _step;
    private readonly CancellationToken _runToken;
    private readonly long _started = WorkerContext.Now();
    private string _output = RedflowJson.Null;
    private TimeSpan _ran;
    private int _recordAttempts;
    private bool _answered; // the handler's call was answered, and the RunActor told how the step ended

    public StepActor(WorkerContext ctx, ClaimedRun run, RunStep step, CancellationToken runToken)
    {
        _ctx = ctx;
        _run = run;
        _step = step;
        _runToken = runToken;
    }

    public ITimerScheduler Timers { get; set; } = null!;

    // A switch, not ReceiveActor's handler table: one of these is created per step call.
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case FunctionDone m: OnFunctionDone(m); break;
            case FunctionFailed m: Fail(Unwrap(m.Error)); break;
            case Recorded m: OnRecorded(m); break;
            case RecordFailed m: OnRecordFailed(m); break;
            case RetryRecord: Record(); break;
            default: Unhandled(message); break;
        }
    }

    protected override void PreStart()
    {
        // Task.Run: a step function that blocks synchronously must not block this actor's thread. Inside it, the
        // step's span is the current activity and the log scope names the run and the step.
        using (_ctx.LogScope(_run, _step.Name))
        {
            Task.Run(() =>
                {
                    System.Diagnostics.Activity.Current = _step.Activity;
                    return StepApi.InvokeAsync(_step.Name, _step.Invoke, _step.Options, _runToken);
                })
                .PipeTo(Self, success: json => new FunctionDone(json), failure: ex => new FunctionFailed(ex));
        }
    }

    protected override void PostStop()
    {
        if (_answered) return;
        Context.Parent.Tell(new StepInterrupted(_step.Name));
        Replies.Fail(_step.Reply, new RedflowException($"Step '{_step.Name}' of run {_run.Id} was interrupted (its worker is stopping)."), Context.Parent);
    }

    private void OnFunctionDone(FunctionDone m)
    {
        _ran = WorkerContext.Until(_started).Negate();
        RedflowTelemetry.StepDuration.Record(_ran.TotalMilliseconds, RedflowTelemetry.WorkflowTags(_run.Workflow, _run.Queue));
        var size = System.Text.Encoding.UTF8.GetByteCount(m.Output);
        if (size > _ctx.Options.MaxPayloadBytes)
        {
            Fail(new NonRetriableException($"The result of step '{_step.Name}' of workflow '{_run.Workflow}' is {size} bytes of JSON; the limit is {_ctx.Options.MaxPayloadBytes} (StartWorkerOptions.MaxPayloadBytes)."));
            return;
        }
        _output = m.Output;
        Record();
    }

    // Durability point: the step's result is recorded once, fenced by the run's token.
    private void Record() =>
        _ctx.Store.RecordStepAsync(_run.Id, _run.Token, _step.Name, _run.Attempt, _output, _ran)
            .PipeTo(Self, success: r => new Recorded(r.Outcome, r.Output), failure: ex => new RecordFailed(ex));

    private void OnRecorded(Recorded m)
    {
        _ctx.Health.RedisOk();
        if (m.Outcome == WriteOutcome.Fenced)
        {
            _log.Warning("Run {0}: step '{1}' not recorded: the lease was lost", _run.Id, _step.Name);
            Context.Parent.Tell(LeaseLost.Instance);
            _answered = true;
            Replies.Fail(_step.Reply, new LeaseLostException(_run.Id));
        }
        else
        {
            Context.Parent.Tell(new StepRecorded(_step.Name, m.Output));
            _answered = true;
            Replies.Result(_step.Reply, m.Output, Context.Parent);
        }
        Context.Stop(Self);
    }

    private void OnRecordFailed(RecordFailed m)
    {
        if (_runToken.IsCancellationRequested)
        {
            Context.Parent.Tell(new StepInterrupted(_step.Name));
            _answered = true;
            Replies.Fail(_step.Reply, new OperationCanceledException(_runToken), Context.Parent);
            Context.Stop(Self);
            return;
        }
        _ctx.Health.Failed($"recording step '{_step.Name}' of run {_run.Id}", m.Error);
        Timers.StartSingleTimer("retry-record", new RetryRecord(), Backoff.Delay(++_recordAttempts));
    }

    private void Fail(Exception error)
    {
        Context.Parent.Tell(new StepFailed(_step.Name, error, WorkerContext.Until(_started).Negate()));
        _answered = true;
        Replies.Fail(_step.Reply, error, Context.Parent);
        Context.Stop(Self);
    }

    internal static Exception Unwrap(Exception ex) => ex is AggregateException { InnerExceptions.Count: 1 } agg ? Unwrap(agg.InnerExceptions[0]) : ex;
}
