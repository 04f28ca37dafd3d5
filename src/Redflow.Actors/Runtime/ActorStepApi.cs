using System.Diagnostics;
using Akka.Actor;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>
/// The step API a handler sees on a worker (<c>ctx.Step</c>): each step call and each wait goes to the run's RunActor,
/// which answers it from the record, runs the step in a StepActor, or takes the wait; children are started once and
/// waited on like any other wait. A wait the run must suspend on is never answered in this attempt: the handler's
/// awaiting call simply does not return, and no exception reaches its code.
/// </summary>
internal sealed class ActorStepApi(TurnRef run, CancellationToken token, WorkerContext ctx, ClaimedRun claimed) : StepApi
{
    protected override string Workflow => claimed.Workflow;

    protected override async Task<string> ExecuteAsync(string name, Func<CancellationToken, Task<string>> invoke, StepOptions? options)
    {
        var reply = Replies.New();
        run.Tell(new RunStep(name, invoke, options, reply, Activity.Current));
        await using var _ = token.Register(() => Replies.Run(() => reply.TrySetCanceled(token)));
        return await reply.Task.ConfigureAwait(false);
    }

    protected override Task<string> WaitCoreAsync(WaitRequest wait) => Wait(wait, null);

    private Task<string> Wait(WaitRequest wait, Func<Task<string>>? startChild)
    {
        // Not tied to the run's token: a wait ends by its answer, or never (the run suspended); a stopping run's
        // handler is abandoned with it.
        var reply = Replies.New();
        run.Tell(new RunWait(wait, reply, startChild));
        return reply.Task;
    }

    /// <summary>
    /// Waits for a child like any other wait: the RunActor starts it once (its id is derived from parent, step and
    /// attempt, or found by the caller's idempotency key), unless the step is recorded; a finished child answers at
    /// once, else the run suspends and the child's end requeues it.
    /// </summary>
    protected override Task<string> RunChildAsync(string name, string workflow, object? input, ChildWorkflowOptions options)
    {
        // The emit runs from the RunActor's thread, under the handler's span (the child's trace continues the parent's).
        var span = Activity.Current;
        return Wait(new WaitRequest(name, WaitKind.Child, null) { Relative = options.Timeout }, () =>
        {
            var previous = Activity.Current;
            Activity.Current = span;
            try { return EmitChildRunAsync(name, workflow, input, options, token); }
            finally { Activity.Current = previous; }
        });
    }

    private Task<string> EmitChildRunAsync(string name, string workflow, object? input, ChildWorkflowOptions options, CancellationToken ct)
    {
        var emit = new EmitOptions { IdempotencyKey = options.IdempotencyKey, RunAt = options.RunAt, Queue = options.Queue };
        return ctx.Client.EmitAsync(new EmitRequest(workflow, ctx.Client.SerializeInput(workflow, input))
        {
            Options = emit, ParentRunId = claimed.Id, RunId = RunIds.Child(claimed.Id, name, claimed.Attempt),
        }, ct);
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

/// <summary>
/// The answers to a handler's calls. A reply's continuations (the handler's code after its await) run where the reply is
/// completed, so replies are never completed on an actor's thread: each goes to the thread pool, and results a replay
/// hands back together are completed one after the other in one work item, so the handler sees them in that order
/// (<c>Task.WhenAny</c> picks the first).
/// </summary>
internal static class Replies
{
    /// <summary>A reply whose continuations run synchronously where it is completed: complete it only through <see cref="Run(Action, TurnRef?)"/>.</summary>
    public static TaskCompletionSource<string> New() => new();

    /// <summary>
    /// Runs completions on the thread pool, in order, one after the other; then tells <paramref name="idle"/> (the
    /// RunActor) <see cref="HandlerIdle"/>: the handler's code they resumed has run up to its next await.
    /// </summary>
    public static void Run(IReadOnlyList<Action> inOrder, TurnRef? idle) => ThreadPool.UnsafeQueueUserWorkItem(static s =>
    {
        foreach (var complete in s.inOrder) complete();
        s.idle?.Tell(HandlerIdle.Instance);
    }, (inOrder, idle), preferLocal: false);

    /// <summary>Runs one completion on the thread pool (see <see cref="Run(IReadOnlyList{Action}, TurnRef?)"/>).</summary>
    public static void Run(Action complete, TurnRef? idle = null) => Run([complete], idle);

    public static void Result(TaskCompletionSource<string> reply, string json, TurnRef? idle) => Run(() => reply.TrySetResult(json), idle);

    public static void Fail(TaskCompletionSource<string> reply, Exception error, TurnRef? idle = null) => Run(() => reply.TrySetException(error), idle);
}
