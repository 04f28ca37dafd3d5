using System.Collections.Concurrent;
using System.Text.Json;

namespace Redflow.Tests.Integration;

/// <summary>Durable waits on real workers: sleeps, signals, events, children and parallel branches (API.md, "Durable waits").</summary>
public sealed class WaitTests : WorkerTest
{
    private static readonly WorkflowOptions Wide = new() { MaxConcurrency = 20 };

    private async Task WaitForStatusAsync(string runId, RunStatus status) =>
        await EventuallyAsync(async () => (await RunAsync(runId)).Status == status, $"run {runId} is {status}");

    [Fact]
    public async Task A_sleeping_run_holds_no_slot_and_wakes_on_the_redis_clock()
    {
        var sleeper = Workflows.Define<JsonElement, string>("sleeper", async ctx =>
        {
            await ctx.Step.RunAsync("before", _ => Task.FromResult(1));
            await ctx.Step.SleepAsync("nap", TimeSpan.FromSeconds(1));
            return await ctx.Step.RunAsync("after", _ => Task.FromResult("awake"));
        }, new WorkflowOptions { MaxConcurrency = 1 });
        var quick = Workflows.Define<JsonElement, string>("quick", async ctx => "done", new WorkflowOptions { MaxConcurrency = 1 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [sleeper, quick], Concurrency = 1 });
        var sleeping = await Client.EmitWorkflowAsync("sleeper", null);
        await WaitForStatusAsync(sleeping.RunId, RunStatus.Waiting);
        var wait = Assert.Single((await RunAsync(sleeping.RunId)).Waits);
        Assert.Equal((WaitKind.Sleep, "nap"), (wait.Kind, wait.Step));
        Assert.NotNull(wait.Until);
        // The worker's only slot is free while the run sleeps, and its cap too.
        Assert.Equal("done", (await (await Client.EmitWorkflowAsync("quick", null)).ResultAsync(Generous)).GetString());
        Assert.Equal("awake", (await sleeping.ResultAsync(Generous)).GetString());
        var run = await RunAsync(sleeping.RunId);
        Assert.True(run.FinishedAt >= wait.Until);
        Assert.Empty(run.Waits);
        Assert.Equal(["before", "nap", "after"], (await Client.GetRunStepsAsync(sleeping.RunId)).Select(s => s.Name));
    }

    [Fact]
    public async Task Two_signals_sent_before_the_waits_are_taken_in_order_by_two_waits()
    {
        var ran = 0;
        var approvals = Workflows.Define<JsonElement, string[]>("approvals", async ctx =>
        {
            await ctx.Step.RunAsync("count", _ => Task.FromResult(Interlocked.Increment(ref ran)));
            var first = await ctx.Step.WaitForSignalAsync<string>("first", "approve");
            var second = await ctx.Step.WaitForSignalAsync<string>("second", "approve");
            return [first, second];
        }, Wide);
        await StartWorkerAsync(approvals);
        var handle = await Client.EmitWorkflowAsync("approvals", null, new EmitOptions { Delay = TimeSpan.FromMilliseconds(500) });
        Assert.True(await Client.SignalRunAsync(handle.RunId, "approve", "alice")); // buffered: the run has not started
        Assert.True(await Client.SignalRunAsync(handle.RunId, "approve", "bob"));
        Assert.Equal(RunStatus.Scheduled, (await RunAsync(handle.RunId)).Status);
        Assert.Equal(["alice", "bob"], (await handle.ResultAsync(Generous)).Deserialize<string[]>()!);
        Assert.False(await Client.SignalRunAsync(handle.RunId, "approve", "late")); // finished
        Assert.False(await Client.SignalRunAsync("run_00000000000000000000000000", "approve"));
    }

    [Fact]
    public async Task A_signal_sent_while_the_run_waits_requeues_it()
    {
        var wf = Workflows.Define<JsonElement, string>("approval", async ctx =>
            (await ctx.Step.WaitForSignalAsync<Approval>("approval", "approve")).By, Wide);
        await StartWorkerAsync(wf);
        var handle = await Client.EmitWorkflowAsync("approval", null);
        await WaitForStatusAsync(handle.RunId, RunStatus.Waiting);
        var wait = Assert.Single((await RunAsync(handle.RunId)).Waits);
        Assert.Equal(new WaitInfo("approval", WaitKind.Signal, "approve", null, null), wait);
        Assert.True(await Client.SignalRunAsync(handle.RunId, "approve", new Approval("carol")));
        Assert.Equal("carol", (await handle.ResultAsync(Generous)).GetString());
        Assert.Equal(1, (await RunAsync(handle.RunId)).Resumes);
    }

    [Fact]
    public async Task An_event_sent_between_the_emit_and_the_wait_is_taken_and_a_key_selects_events()
    {
        var paid = Workflows.Define<Order, int>("await-payment", async ctx =>
        {
            await ctx.Step.SleepAsync("settle", TimeSpan.FromMilliseconds(300)); // the event is sent before the wait
            var payment = await ctx.Step.WaitForEventAsync<Payment>("paid", "payment.succeeded", new WaitOptions { Key = ctx.Input.Id });
            return payment.Amount;
        }, Wide);
        await StartWorkerAsync(paid);
        var one = await Client.EmitWorkflowAsync("await-payment", new Order("ord_1"));
        var two = await Client.EmitWorkflowAsync("await-payment", new Order("ord_2"));
        var sent = await Client.SendEventAsync("payment.succeeded", new Payment("ord_1", 42), new SendEventOptions { Key = "ord_1" });
        Assert.StartsWith("evt_", sent.EventId);
        Assert.Equal(42, (await one.ResultAsync(Generous)).GetInt32());
        await WaitForStatusAsync(two.RunId, RunStatus.Waiting);
        var wait = Assert.Single((await RunAsync(two.RunId)).Waits);
        Assert.Equal((WaitKind.Event, "payment.succeeded", "ord_2"), (wait.Kind, wait.Name, wait.Key));
        var again = await Client.SendEventAsync("payment.succeeded", new Payment("ord_2", 7), new SendEventOptions { Key = "ord_2", IdempotencyKey = "psp:2" });
        var repeat = await Client.SendEventAsync("payment.succeeded", new Payment("ord_2", 7), new SendEventOptions { Key = "ord_2", IdempotencyKey = "psp:2" });
        Assert.Equal(1, again.RunsResumed);
        Assert.Equal(new EventSent(again.EventId, 0, 0), repeat);
        Assert.Equal(7, (await two.ResultAsync(Generous)).GetInt32());
    }

    [Fact]
    public async Task A_wait_past_its_timeout_throws_a_timeout_the_handler_can_catch()
    {
        var wf = Workflows.Define<JsonElement, string>("approval-with-timeout", async ctx =>
        {
            try
            {
                return await ctx.Step.WaitForSignalAsync<string>("approval", "approve", new WaitOptions { Timeout = TimeSpan.FromMilliseconds(500) });
            }
            catch (RedflowTimeoutException)
            {
                return await ctx.Step.RunAsync("escalate", _ => Task.FromResult("escalated"));
            }
        }, Wide);
        await StartWorkerAsync(wf);
        var handle = await Client.EmitWorkflowAsync("approval-with-timeout", null);
        Assert.Equal("escalated", (await handle.ResultAsync(Generous)).GetString());
        var steps = await Client.GetRunStepsAsync(handle.RunId);
        Assert.Equal(RunStatus.Failed, steps[0].Status); // the timeout is recorded like a result
        Assert.Equal("Redflow.RedflowTimeoutException", steps[0].Error!.Type);
    }

    [Fact]
    public async Task A_catch_all_around_a_child_sees_only_its_real_failure_and_the_compensation_runs_once()
    {
        var catches = new ConcurrentQueue<string>();
        var compensations = 0;
        var child = Workflows.Define<JsonElement, int>("flaky-child", async ctx =>
        {
            await ctx.Step.SleepAsync("think", TimeSpan.FromMilliseconds(300));
            throw new NonRetriableException("the child broke");
        }, Wide);
        var parent = Workflows.Define<JsonElement, string>("careful-parent", async ctx =>
        {
            try
            {
                await ctx.Step.RunWorkflowAsync<int>("child", "flaky-child", null);
                return "no";
            }
            catch (Exception e)
            {
                catches.Enqueue(e.GetType().Name);
                await ctx.Step.RunAsync("compensate", _ => Task.FromResult(Interlocked.Increment(ref compensations)));
                return "compensated";
            }
        }, Wide);
        await StartWorkerAsync(child, parent);
        var handle = await Client.EmitWorkflowAsync("careful-parent", null);
        Assert.Equal("compensated", (await handle.ResultAsync(Generous)).GetString());
        Assert.Equal([nameof(RunFailedException)], catches);
        Assert.Equal(1, compensations);
        Assert.Null((await RunAsync(handle.RunId)).Error);
    }

    [Fact]
    public async Task WhenAll_over_ten_children_runs_them_concurrently_and_returns_all_outputs()
    {
        var running = new PeakCounter();
        var child = Workflows.Define<int, int>("square", async ctx => await ctx.Step.RunAsync("work", _ => running.CountAsync(async () =>
        {
            await Task.Delay(300);
            return ctx.Input * ctx.Input;
        })), Wide);
        var fanOut = Workflows.Define<JsonElement, int[]>("fan-out", async ctx =>
            await Task.WhenAll(Enumerable.Range(1, 10).Select(i => ctx.Step.RunWorkflowAsync<int>($"child-{i}", "square", i))), Wide);
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [child, fanOut], Concurrency = 12 });
        var handle = await Client.EmitWorkflowAsync("fan-out", null);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => i * i), (await handle.ResultAsync(Generous)).Deserialize<int[]>()!);
        Assert.True(running.Peak > 1, $"at most {running.Peak} child ran at once");
        // A child's step spans the wait: from when the parent started waiting to the child's end (each child works 300 ms).
        foreach (var step in await Client.GetRunStepsAsync(handle.RunId))
            Assert.True(step.FinishedAt - step.StartedAt >= TimeSpan.FromMilliseconds(300), $"step {step.Name} spans {step.FinishedAt - step.StartedAt}");
    }

    [Fact]
    public async Task WhenAll_runs_steps_started_together_concurrently()
    {
        var running = new PeakCounter();
        var wf = Workflows.Define<JsonElement, int>("parallel-steps", async ctx =>
        {
            var results = await Task.WhenAll(Enumerable.Range(1, 4).Select(i => ctx.Step.RunAsync($"s{i}", _ => running.CountAsync(async () =>
            {
                await Task.Delay(200);
                return i;
            }))));
            return results.Sum();
        }, Wide);
        await StartWorkerAsync(wf);
        Assert.Equal(10, (await (await Client.EmitWorkflowAsync("parallel-steps", null)).ResultAsync(Generous)).GetInt32());
        Assert.True(running.Peak > 1, $"at most {running.Peak} step ran at once");
    }

    [Fact]
    public async Task WhenAny_of_a_signal_and_a_sleep_takes_whichever_comes_first_and_replays_the_same_way()
    {
        var wf = Workflows.Define<JsonElement, string>("signal-or-timer", async ctx =>
        {
            // The timer is called first and listed first: only the replay order (the signal was recorded first)
            // makes a replay with both recorded pick the signal again.
            var timer = ctx.Step.SleepAsync("timer", TimeSpan.FromSeconds(1));
            var signal = ctx.Step.WaitForSignalAsync<string>("yes", "yes");
            var first = await Task.WhenAny(timer, signal);
            var picked = first == signal ? "signal:" + await signal : "timer";
            // A later wait makes the run suspend and replay twice more (the timer's end, then this sleep's), the last
            // time with both branches recorded: the same branch must be picked each time.
            await ctx.Step.SleepAsync("after", TimeSpan.FromSeconds(2));
            return await ctx.Step.RunAsync("result", _ => Task.FromResult(picked));
        }, Wide);
        await StartWorkerAsync(wf);
        var signaled = await Client.EmitWorkflowAsync("signal-or-timer", null, new EmitOptions { Delay = TimeSpan.FromMilliseconds(300) });
        Assert.True(await Client.SignalRunAsync(signaled.RunId, "yes", "ok")); // buffered: taken at the first wait
        var timed = await Client.EmitWorkflowAsync("signal-or-timer", null);
        Assert.Equal("signal:ok", (await signaled.ResultAsync(Generous)).GetString());
        Assert.Equal("timer", (await timed.ResultAsync(Generous)).GetString());
        var steps = (await Client.GetRunStepsAsync(signaled.RunId)).Select(s => s.Name).ToList();
        Assert.Equal(["yes", "timer", "after", "result"], steps); // both branches recorded, the signal first
    }

    [Fact]
    public async Task Cancel_ends_sleeping_and_waiting_runs_at_once_and_removes_their_waits()
    {
        var sleeper = Workflows.Define<JsonElement, int>("long-sleep", async ctx =>
        {
            await ctx.Step.SleepAsync("nap", TimeSpan.FromHours(1));
            return 1;
        }, Wide);
        var waiter = Workflows.Define<JsonElement, int>("long-wait", async ctx =>
            await ctx.Step.WaitForEventAsync<int>("e", "never", new WaitOptions { Key = "k" }), Wide);
        await StartWorkerAsync(sleeper, waiter);
        var a = await Client.EmitWorkflowAsync("long-sleep", null);
        var b = await Client.EmitWorkflowAsync("long-wait", null);
        await WaitForStatusAsync(a.RunId, RunStatus.Waiting);
        await WaitForStatusAsync(b.RunId, RunStatus.Waiting);
        Assert.True(await Client.CancelRunAsync(a.RunId, "no"));
        Assert.True(await Client.CancelRunAsync(b.RunId, "no"));
        Assert.Equal(RunStatus.Canceled, (await RunAsync(a.RunId)).Status);
        Assert.Equal(RunStatus.Canceled, (await RunAsync(b.RunId)).Status);
        var db = TestEnv.Db;
        var keys = new Redflow.Protocol.Keys(Prefix);
        Assert.False(await db.KeyExistsAsync(keys.RunWaits(a.RunId)));
        Assert.Null(await db.SortedSetScoreAsync(keys.Waits, a.RunId));
        Assert.False(await db.KeyExistsAsync(keys.EventWaiters("never", "k")));
        Assert.Equal(0, (await Client.SendEventAsync("never", 1, new SendEventOptions { Key = "k" })).RunsResumed);
    }

    [Fact]
    public async Task An_event_trigger_starts_one_run_per_event_with_its_payload_as_input()
    {
        var onOrder = Workflows.Define<Order, string>("on-order", async ctx => "handled " + ctx.Input.Id,
            new WorkflowOptions { MaxConcurrency = 5, Events = [new EventTrigger("order.created")] });
        await StartWorkerAsync(onOrder);
        var sends = await Task.WhenAll(Enumerable.Range(1, 5).Select(i =>
            Client.SendEventAsync("order.created", new Order($"o{i}"), new SendEventOptions { IdempotencyKey = $"o{i}" })));
        var repeats = await Task.WhenAll(Enumerable.Range(1, 5).Select(i =>
            Client.SendEventAsync("order.created", new Order($"o{i}"), new SendEventOptions { IdempotencyKey = $"o{i}" })));
        Assert.All(sends, s => Assert.Equal(1, s.RunsStarted));
        Assert.All(repeats, s => Assert.Equal(0, s.RunsStarted));
        await EventuallyAsync(async () => (await Client.ListRunsAsync(new ListRunsParams { Workflow = "on-order", Status = RunStatus.Succeeded })).Count == 5,
            "the five triggered runs succeeded");
        var outputs = (await Client.ListRunsAsync(new ListRunsParams { Workflow = "on-order" })).Select(r => r.Output!.Value.GetString()).Order();
        Assert.Equal(Enumerable.Range(1, 5).Select(i => $"handled o{i}"), outputs);
    }

    [Fact]
    public async Task A_run_that_succeeded_on_a_later_attempt_has_no_error()
    {
        var tries = 0;
        var wf = Workflows.Define<JsonElement, int>("second-time", async ctx =>
            await ctx.Step.RunAsync("s", _ => Interlocked.Increment(ref tries) == 1 ? throw new InvalidOperationException("first") : Task.FromResult(2)),
            new WorkflowOptions { MaxConcurrency = 5, Retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(50) } });
        await StartWorkerAsync(wf);
        var handle = await Client.EmitWorkflowAsync("second-time", null);
        Assert.Equal(2, (await handle.ResultAsync(Generous)).GetInt32());
        var run = await RunAsync(handle.RunId);
        Assert.Equal((2, null), (run.Attempt, run.Error));
        var store = await ((RedisRedflowClient)Client).StoreAsync();
        var history = Assert.Single(await store.GetAttemptErrorsAsync(handle.RunId));
        Assert.Equal((1, "first"), (history.Attempt, history.Error.Message));
        Assert.NotNull(history.Worker); // the node that ran the failed attempt
        Assert.True(history.StartedAt <= history.FailedAt, $"attempt started {history.StartedAt}, failed {history.FailedAt}");
    }

    [Fact]
    public async Task A_class_style_workflow_is_disposed_when_its_run_suspends()
    {
        DisposableWaiter.Disposed = 0;
        var wf = Workflows.FromType<DisposableWaiter>(new WorkflowOptions { MaxConcurrency = 5 });
        await StartWorkerAsync(wf);
        var handle = await Client.EmitWorkflowAsync("disposable-waiter", null);
        await WaitForStatusAsync(handle.RunId, RunStatus.Waiting);
        await EventuallyAsync(() => Task.FromResult(Volatile.Read(ref DisposableWaiter.Disposed) == 1), "the suspended attempt's instance was disposed");
        Assert.True(await Client.SignalRunAsync(handle.RunId, "go", 5));
        Assert.Equal(5, (await handle.ResultAsync(Generous)).GetInt32());
        Assert.Equal(2, Volatile.Read(ref DisposableWaiter.Disposed));
    }

    [Fact]
    public async Task Bad_input_to_signals_and_events_is_refused_before_anything_is_written()
    {
        var wf = Workflows.Define<JsonElement, int>("target", async ctx => await ctx.Step.WaitForSignalAsync<int>("w", "go"), Wide);
        await StartWorkerAsync(wf);
        var handle = await Client.EmitWorkflowAsync("target", null);
        await Assert.ThrowsAsync<ArgumentException>(() => Client.SignalRunAsync(handle.RunId, "bad\nname"));
        await Assert.ThrowsAsync<ArgumentException>(() => Client.SignalRunAsync(handle.RunId, "go", new string('x', 600 * 1024)));
        await Assert.ThrowsAsync<ArgumentException>(() => Client.SendEventAsync("", 1));
        await Assert.ThrowsAsync<ArgumentException>(() => Client.SendEventAsync("e", 1, new SendEventOptions { Key = "{tag}" }));
        await WaitForStatusAsync(handle.RunId, RunStatus.Waiting);
        Assert.Equal(RunStatus.Waiting, (await RunAsync(handle.RunId)).Status); // nothing was delivered
        Assert.True(await Client.SignalRunAsync(handle.RunId, "go", 3));
        Assert.Equal(3, (await handle.ResultAsync(Generous)).GetInt32());
    }

    [Fact]
    public async Task Zero_durations_and_a_step_name_reused_for_another_kind_of_wait_fail_clearly()
    {
        var zero = Workflows.Define<JsonElement, int>("zero-sleep", async ctx =>
        {
            await ctx.Step.SleepAsync("nap", TimeSpan.Zero);
            return 1;
        }, Wide);
        var first = true;
        var changed = Workflows.Define<JsonElement, int>("changed-kind", async ctx =>
        {
            if (first)
            {
                first = false;
                await ctx.Step.RunAsync("x", _ => Task.FromResult(1));
                throw new InvalidOperationException("retry me");
            }
            return await ctx.Step.WaitForSignalAsync<int>("x", "go");
        }, new WorkflowOptions { MaxConcurrency = 5, Retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(50) } });
        await StartWorkerAsync(zero, changed);
        var a = await Client.EmitWorkflowAsync("zero-sleep", null);
        var error = (await Assert.ThrowsAsync<RunFailedException>(() => a.ResultAsync(Generous))).Error;
        Assert.Equal(typeof(ArgumentOutOfRangeException).FullName, error.Type);
        Assert.Contains("duration", error.Message);
        var b = await Client.EmitWorkflowAsync("changed-kind", null);
        var kind = (await Assert.ThrowsAsync<RunFailedException>(() => b.ResultAsync(Generous))).Error;
        Assert.Contains("recorded as a step (RunAsync) and is now called as a signal wait", kind.Message);
    }

    private sealed record Approval(string By);

    private sealed record Order(string Id);

    private sealed record Payment(string OrderId, int Amount);
}

/// <summary>A class-style workflow that waits on a signal and counts its disposals (one per attempt, suspended or finished).</summary>
[Workflow("disposable-waiter")]
public sealed class DisposableWaiter : IWorkflow<JsonElement, int>, IDisposable
{
    internal static int Disposed;

    public Task<int> RunAsync(WorkflowHandlerContext<JsonElement> ctx) => ctx.Step.WaitForSignalAsync<int>("go", "go");

    public void Dispose() => Interlocked.Increment(ref Disposed);
}
