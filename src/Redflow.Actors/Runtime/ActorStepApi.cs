using System.Diagnostics;
using Akka.Actor;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>
/// The step API a handler sees on a worker (<c>ctx.Step</c>): each step call goes to the run's RunActor, which
/// answers it from the record or runs it in a StepActor; children are started once and waited on by suspending
/// the run.
/// </summary>
internal sealed class ActorStepApi(IActorRef run, CancellationToken token, WorkerContext ctx, ClaimedRun claimed) : StepApi
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
        // Durability point: suspension. The script answers from a finished child, or releases the lease, slot and cap and
        // records the run as waiting on the child, whose end requeues it.
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
