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
    private sealed record FunctionFailed(int Call, Exception Error);
    private sealed record Recorded(int Call, WriteOutcome Outcome, string Output);
    private sealed record RecordFailed(int Call, Exception Error, string Output, TimeSpan Ran);
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
            case FunctionFailed m when _calls.ContainsKey(m.Call): Fail(m.Call, Unwrap(m.Error)); break;
            case Recorded m when _calls.TryGetValue(m.Call, out var call): OnRecorded(m.Call, call, m); break;
            case RecordFailed m when _calls.TryGetValue(m.Call, out var call): OnRecordFailed(m.Call, call, m); break;
            case RetryRecord m when _calls.TryGetValue(m.Call, out var call): Record(m.Call, call); break;
            case FunctionFailed or Recorded or RecordFailed or RetryRecord: break; // a call answered already
            default: Unhandled(message); break;
        }
    }

    private void Start(StepCall m)
    {
        var id = ++_nextCall;
        var call = _calls[id] = new Call(m);
        // Task.Run: a step function that blocks synchronously must not block this actor's thread. Inside it, the
        // step's span is the current activity and the log scope names the run and the step. The result is recorded from
        // the same continuation, with no message round through this actor in between; only a failed record comes back
        // here to be retried.
        using (_ctx.LogScope(m.Run, m.Step.Name))
        {
            var (ctx, started) = (_ctx, call.Started);
            Task.Run(() => RunAndRecordAsync(ctx, id, m, started)).PipeTo(Self, failure: ex => new FunctionFailed(id, ex));
        }
    }

    /// <summary>Runs a step's function, then records its result (off the actor's thread, touching none of its state); answers what became of it.</summary>
    private static async Task<object> RunAndRecordAsync(WorkerContext ctx, int id, StepCall m, long started)
    {
        var (step, run) = (m.Step, m.Run);
        System.Diagnostics.Activity.Current = step.Activity;
        string output;
        try
        {
            output = await StepApi.InvokeAsync(step.Name, step.Invoke, step.Options, m.RunToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            return new FunctionFailed(id, ex);
        }
        var ran = WorkerContext.Until(started).Negate();
        RedflowTelemetry.StepDuration.Record(ran.TotalMilliseconds, RedflowTelemetry.WorkflowTags(run.Workflow, run.Queue));
        var size = System.Text.Encoding.UTF8.GetByteCount(output);
        if (size > ctx.Options.MaxPayloadBytes)
            return new FunctionFailed(id, new NonRetriableException($"The result of step '{step.Name}' of workflow '{run.Workflow}' is {size} bytes of JSON; the limit is {ctx.Options.MaxPayloadBytes} (StartWorkerOptions.MaxPayloadBytes)."));
        // Durability point: the step's result is recorded once, fenced by the run's token.
        try
        {
            var recorded = await ctx.Store.RecordStepAsync(run.Id, run.Token, step.Name, run.Attempt, output, ran).ConfigureAwait(false);
            return new Recorded(id, recorded.Outcome, recorded.Output);
        }
        catch (Exception ex)
        {
            return new RecordFailed(id, ex, output, ran);
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

    // Durability point: a step's record retried after a Redis error (the first try is in RunAndRecordAsync).
    private void Record(int id, Call call) =>
        _ctx.Store.RecordStepAsync(call.Run.Id, call.Run.Token, call.Step.Name, call.Run.Attempt, call.Output, call.Ran)
            .PipeTo(Self, success: r => new Recorded(id, r.Outcome, r.Output), failure: ex => new RecordFailed(id, ex, call.Output, call.Ran));

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
        call.Output = m.Output;
        call.Ran = m.Ran;
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
