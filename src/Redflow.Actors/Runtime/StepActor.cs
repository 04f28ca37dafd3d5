using Akka.Actor;
using Microsoft.Extensions.Logging;
using Akka.Event;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>
/// Told to a StepActor by its RunActor: run <paramref name="Step"/> for <paramref name="Run"/>'s attempt (canceled with
/// <paramref name="RunToken"/>), telling the run's actor what became of it through <paramref name="Turn"/>.
/// </summary>
internal sealed record StepCall(RunStep Step, ClaimedRun Run, CancellationToken RunToken, TurnRef Turn);

/// <summary>
/// The steps that are not served from the record: one StepActor per (pooled) RunActor, made with the first such step
/// and kept from run to run, running each step call it is told (<see cref="StepCall"/>, several at once for parallel
/// steps). Per call: runs the step function (off the actor thread), records its result with the run's fencing token,
/// then answers the handler and tells the run's turn (<see cref="TurnRef"/>: a call that outlives its run's turn, its
/// lease lost, tells nobody). A Redis error while recording is retried in place with backoff for as long as the run's
/// token stands; a fenced write means the lease is gone, and the RunActor is told. One actor per RunActor rather than
/// per step: a step costs a dictionary entry and its messages, not an actor's creation and stop.
/// </summary>
internal sealed class StepActor : UntypedActor, IWithTimers
{
    private sealed record FunctionDone(int Call, string Output);
    private sealed record FunctionFailed(int Call, Exception Error);
    private sealed record Recorded(int Call, WriteOutcome Outcome, string Output);
    private sealed record RecordFailed(int Call, Exception Error);
    private sealed record RetryRecord(int Call);

    /// <summary>A step call in progress.</summary>
    private sealed class Call(StepCall call)
    {
        public RunStep Step { get; } = call.Step;
        public ClaimedRun Run { get; } = call.Run;
        public CancellationToken RunToken { get; } = call.RunToken;
        public TurnRef Turn { get; } = call.Turn;
        public long Started { get; } = WorkerContext.Now();
        public string Output { get; set; } = RedflowJson.Null;
        public TimeSpan Ran { get; set; }
        public int RecordAttempts { get; set; }
    }

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private readonly Dictionary<int, Call> _calls = []; // unanswered: removed once the handler's call is answered
    private int _nextCall; // never reused, so a late answer (a function or a write) finds no call or its own

    public StepActor(WorkerContext ctx) => _ctx = ctx;

    public ITimerScheduler Timers { get; set; } = null!;

    // A switch, not ReceiveActor's handler table (cheaper to build).
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case StepCall m: Start(m); break;
            case FunctionDone m when _calls.TryGetValue(m.Call, out var call): OnFunctionDone(m.Call, call, m.Output); break;
            case FunctionFailed m when _calls.ContainsKey(m.Call): Fail(m.Call, Unwrap(m.Error)); break;
            case Recorded m when _calls.TryGetValue(m.Call, out var call): OnRecorded(m.Call, call, m); break;
            case RecordFailed m when _calls.TryGetValue(m.Call, out var call): OnRecordFailed(m.Call, call, m); break;
            case RetryRecord m when _calls.TryGetValue(m.Call, out var call): Record(m.Call, call); break;
            case FunctionDone or FunctionFailed or Recorded or RecordFailed or RetryRecord: break; // a call answered already
            default: Unhandled(message); break;
        }
    }

    private void Start(StepCall m)
    {
        var id = ++_nextCall;
        var step = m.Step;
        _calls[id] = new Call(m);
        // Task.Run: a step function that blocks synchronously must not block this actor's thread. Inside it, the
        // step's span is the current activity and the log scope names the run and the step.
        using (_ctx.LogScope(m.Run, step.Name))
        {
            var token = m.RunToken;
            Task.Run(() =>
                {
                    System.Diagnostics.Activity.Current = step.Activity;
                    return StepApi.InvokeAsync(step.Name, step.Invoke, step.Options, token);
                })
                .PipeTo(Self, success: json => new FunctionDone(id, json), failure: ex => new FunctionFailed(id, ex));
        }
    }

    protected override void PostStop()
    {
        // Calls not answered yet (the worker stopping, a fault): each fails, and the RunActor is told it ended.
        foreach (var call in _calls.Values)
        {
            call.Turn.Tell(new StepInterrupted(call.Step.Name));
            Replies.Fail(call.Step.Reply, new RedflowException($"Step '{call.Step.Name}' of run {call.Run.Id} was interrupted (its worker is stopping)."), call.Turn);
        }
        _calls.Clear();
    }

    private void OnFunctionDone(int id, Call call, string output)
    {
        call.Ran = WorkerContext.Until(call.Started).Negate();
        RedflowTelemetry.StepDuration.Record(call.Ran.TotalMilliseconds, RedflowTelemetry.WorkflowTags(call.Run.Workflow, call.Run.Queue));
        var size = System.Text.Encoding.UTF8.GetByteCount(output);
        if (size > _ctx.Options.MaxPayloadBytes)
        {
            Fail(id, new NonRetriableException($"The result of step '{call.Step.Name}' of workflow '{call.Run.Workflow}' is {size} bytes of JSON; the limit is {_ctx.Options.MaxPayloadBytes} (StartWorkerOptions.MaxPayloadBytes)."));
            return;
        }
        call.Output = output;
        Record(id, call);
    }

    // Durability point: the step's result is recorded once, fenced by the run's token.
    private void Record(int id, Call call) =>
        _ctx.Store.RecordStepAsync(call.Run.Id, call.Run.Token, call.Step.Name, call.Run.Attempt, call.Output, call.Ran)
            .PipeTo(Self, success: r => new Recorded(id, r.Outcome, r.Output), failure: ex => new RecordFailed(id, ex));

    private void OnRecorded(int id, Call call, Recorded m)
    {
        _ctx.Health.RedisOk();
        _calls.Remove(id);
        Timers.Cancel(id);
        if (m.Outcome == WriteOutcome.Fenced)
        {
            _log.Warning("Run {0}: step '{1}' not recorded: the lease was lost", call.Run.Id, call.Step.Name);
            call.Turn.Tell(LeaseLost.Instance);
            Replies.Fail(call.Step.Reply, new LeaseLostException(call.Run.Id));
        }
        else
        {
            call.Turn.Tell(new StepRecorded(call.Step.Name, m.Output));
            Replies.Result(call.Step.Reply, m.Output, call.Turn);
        }
    }

    private void OnRecordFailed(int id, Call call, RecordFailed m)
    {
        if (call.RunToken.IsCancellationRequested)
        {
            _calls.Remove(id);
            call.Turn.Tell(new StepInterrupted(call.Step.Name));
            Replies.Fail(call.Step.Reply, new OperationCanceledException(call.RunToken), call.Turn);
            return;
        }
        _ctx.Health.Failed($"recording step '{call.Step.Name}' of run {call.Run.Id}", m.Error);
        Timers.StartSingleTimer(id, new RetryRecord(id), Backoff.Delay(++call.RecordAttempts)); // one timer per call, keyed by its id
    }

    private void Fail(int id, Exception error)
    {
        var call = _calls[id];
        _calls.Remove(id);
        call.Turn.Tell(new StepFailed(call.Step.Name, error, WorkerContext.Until(call.Started).Negate()));
        Replies.Fail(call.Step.Reply, error, call.Turn);
    }

    internal static Exception Unwrap(Exception ex) => ex is AggregateException { InnerExceptions.Count: 1 } agg ? Unwrap(agg.InnerExceptions[0]) : ex;
}
