using System.Collections.Concurrent;
using Redflow.Protocol;

namespace Redflow.Tests.Integration;

public sealed record Order(string Id, int Amount);

/// <summary>Children, cancellation, timeouts, concurrency caps and OnFailure (G5, G8, G9).</summary>
public sealed class ControlTests : WorkerTest
{
    private static readonly WorkflowDefinition<Order, int> Double =
        Workflows.Define<Order, int>("double", async ctx => ctx.Input.Amount * 2, new WorkflowOptions { MaxConcurrency = 10 });

    [Fact]
    public async Task A_parent_waits_on_its_child_suspended_and_replays_with_cached_steps()
    {
        var before = 0;
        var parent = Workflows.Define<Order, int>("parent", async ctx =>
        {
            var a = await ctx.Step.RunAsync("before", ct => Task.FromResult(Interlocked.Increment(ref before)));
            var doubled = await ctx.Step.RunWorkflowAsync<int>("child", "double", new Order("c", ctx.Input.Amount));
            return a * 1000 + doubled;
        }, new WorkflowOptions { MaxConcurrency = 10 });
        // One slot: the parent must release it while it waits, or the child could never run.
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [parent, Double], Concurrency = 1 });
        var handle = await Client.EmitWorkflowAsync(parent, new Order("p", 21));
        Assert.Equal(1042, await handle.ResultAsync(Generous));
        Assert.Equal(1, before); // replayed after the child finished, but "before" came from the record

        var children = await Client.ListRunsAsync(new ListRunsParams { ParentRunId = handle.RunId });
        var child = Assert.Single(children);
        Assert.Equal(handle.RunId, child.ParentRunId);
        Assert.Equal(RunStatus.Succeeded, child.Status);
        var run = await RunAsync(handle.RunId);
        Assert.True(run.Resumes >= 1);
        Assert.Equal(1, run.Attempt);
    }

    [Fact]
    public async Task A_workflow_capped_at_one_can_run_itself_as_a_child()
    {
        WorkflowDefinition<Order, int>? self = null;
        self = Workflows.Define<Order, int>("recursive", async ctx =>
            ctx.Input.Amount <= 0 ? 0 : ctx.Input.Amount + await ctx.Step.RunWorkflowAsync<int>("down", "recursive", new Order("r", ctx.Input.Amount - 1)),
            new WorkflowOptions { MaxConcurrency = 1 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [self], Concurrency = 1 });
        var handle = await Client.EmitWorkflowAsync(self, new Order("r", 3));
        Assert.Equal(6, await handle.ResultAsync(Generous));
    }

    [Fact]
    public async Task A_failed_child_fails_the_step_and_the_parent_retry_starts_a_fresh_child()
    {
        var childRuns = 0;
        var child = Workflows.Define<Order, int>("picky", async ctx =>
        {
            if (Interlocked.Increment(ref childRuns) == 1) throw new NonRetriableException("no");
            return 7;
        }, new WorkflowOptions { MaxConcurrency = 10 });
        var parent = Workflows.Define<Order, string>("asks-picky", async ctx =>
        {
            try { return "got " + await ctx.Step.RunWorkflowAsync<int>("ask", "picky", ctx.Input); }
            catch (RunFailedException ex) when (ctx.Run.Attempt == 1) { throw new InvalidOperationException("child failed: " + ex.Error.Message); }
        }, new WorkflowOptions { MaxConcurrency = 10, MaxAttempts = 2, Retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(10) } });
        await StartWorkerAsync(parent, child);
        var handle = await Client.EmitWorkflowAsync(parent, new Order("x", 1));
        Assert.Equal("got 7", await handle.ResultAsync(Generous));
        Assert.Equal(2, (await Client.ListRunsAsync(new ListRunsParams { ParentRunId = handle.RunId })).Count);
    }

    [Fact]
    public async Task EmitWorkflowAsync_returns_the_child_id_once()
    {
        var parent = Workflows.Define<Order, string>("emitter", async ctx =>
            await ctx.Step.EmitWorkflowAsync("fire", "double", new Order("e", 4)), new WorkflowOptions { MaxConcurrency = 10 });
        await StartWorkerAsync(parent, Double);
        var handle = await Client.EmitWorkflowAsync(parent, new Order("x", 1));
        var childId = await handle.ResultAsync<string>(Generous);
        Assert.Equal(8, await Client.GetHandle(childId).ResultAsync<int>(Generous));
        Assert.Equal(handle.RunId, (await RunAsync(childId)).ParentRunId);
    }

    [Fact]
    public async Task Child_wait_timeout_fails_the_step_with_a_timeout()
    {
        var slow = Workflows.Define<Order, int>("sleepy", async ctx =>
        {
            await Task.Delay(TimeSpan.FromSeconds(20), ctx.CancellationToken);
            return 1;
        }, new WorkflowOptions { MaxConcurrency = 10 });
        var parent = Workflows.Define<Order, string>("impatient", async ctx =>
        {
            try { await ctx.Step.RunWorkflowAsync<int>("wait", "sleepy", ctx.Input, new ChildWorkflowOptions { Timeout = TimeSpan.FromMilliseconds(500) }); return "no"; }
            catch (RedflowTimeoutException) { return "timed out"; }
        }, new WorkflowOptions { MaxConcurrency = 10 });
        await StartWorkerAsync(parent, slow);
        var handle = await Client.EmitWorkflowAsync(parent, new Order("x", 1));
        Assert.Equal("timed out", await handle.ResultAsync<string>(Generous));
    }

    [Fact]
    public async Task Step_timeout_cancels_the_step_token_and_fails_with_a_timeout()
    {
        var canceled = new TaskCompletionSource();
        var workflow = Workflows.Define<Order, string>("step-timeout", async ctx =>
        {
            try
            {
                await ctx.Step.RunAsync("slow", async ct =>
                {
                    using var _ = ct.Register(() => canceled.TrySetResult());
                    await Task.Delay(TimeSpan.FromSeconds(20), ct);
                    return 1;
                }, new StepOptions { Timeout = TimeSpan.FromMilliseconds(200) });
                return "no";
            }
            catch (RedflowTimeoutException ex) { return ex.Message; }
        }, new WorkflowOptions { MaxConcurrency = 10 });
        await StartWorkerAsync(workflow);
        var handle = await Client.EmitWorkflowAsync(workflow, new Order("x", 1));
        Assert.Contains("'slow' timed out", await handle.ResultAsync<string>(Generous));
        await canceled.Task.WaitAsync(Generous);
    }

    [Fact]
    public async Task ResultAsync_times_out_with_a_RedflowTimeoutException()
    {
        var workflow = Workflows.Define<Order, int>("never-picked", async ctx => 1);
        await StartWorkerAsync(workflow);
        var handle = await Client.EmitWorkflowAsync(workflow, new Order("x", 1), new EmitOptions { Delay = TimeSpan.FromMinutes(5) });
        await Assert.ThrowsAsync<RedflowTimeoutException>(() => handle.ResultAsync(TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task G9_cancel_of_a_queued_or_scheduled_run_is_immediate_and_final()
    {
        var workflow = Workflows.Define<Order, int>("cancel-me", async ctx => 1);
        await StartWorkerAsync(workflow);
        var handle = await Client.EmitWorkflowAsync(workflow, new Order("x", 1), new EmitOptions { Delay = TimeSpan.FromSeconds(2) });
        Assert.True(await Client.CancelRunAsync(handle.RunId, "changed my mind"));
        var ex = await Assert.ThrowsAsync<CanceledException>(() => handle.ResultAsync(Generous));
        Assert.Equal("changed my mind", ex.Reason);
        Assert.False(await Client.CancelRunAsync(handle.RunId)); // already finished
        Assert.False(await Client.CancelRunAsync("run_unknown"));
        var run = await RunAsync(handle.RunId);
        Assert.Equal(RunStatus.Canceled, run.Status);
        Assert.Null(run.StartedAt);
    }

    [Fact]
    public async Task G9_cancel_of_a_running_run_cancels_its_token_and_ends_it_canceled()
    {
        var seen = new TaskCompletionSource<StopReason>();
        var started = new TaskCompletionSource();
        var workflow = Workflows.Define<Order, int>("long", async ctx =>
        {
            started.TrySetResult();
            try { await Task.Delay(TimeSpan.FromSeconds(30), ctx.CancellationToken); }
            catch (OperationCanceledException) { seen.TrySetResult(ctx.StopReason); throw; }
            return 1;
        }, new WorkflowOptions { MaxConcurrency = 10 });
        await StartWorkerAsync(workflow);
        var handle = await Client.EmitWorkflowAsync(workflow, new Order("x", 1));
        await started.Task.WaitAsync(Generous);
        Assert.True(await Client.CancelRunAsync(handle.RunId, "stop it"));
        Assert.Equal(StopReason.CancelRequested, await seen.Task.WaitAsync(Generous));
        var ex = await Assert.ThrowsAsync<CanceledException>(() => handle.ResultAsync(Generous));
        Assert.Equal("stop it", ex.Reason);
    }

    [Fact]
    public async Task G9_a_handler_that_ignores_cancel_is_recorded_canceled_after_the_grace_and_its_writes_are_rejected()
    {
        var release = new TaskCompletionSource();
        var started = new TaskCompletionSource();
        var workflow = Workflows.Define<Order, int>("stubborn", async ctx =>
        {
            started.TrySetResult();
            await release.Task; // ignores its token
            await ctx.Step.RunAsync("late", ct => Task.FromResult(1));
            return 1;
        }, new WorkflowOptions { MaxConcurrency = 10 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [workflow], CancelGrace = TimeSpan.FromMilliseconds(500) });
        var handle = await Client.EmitWorkflowAsync(workflow, new Order("x", 1));
        await started.Task.WaitAsync(Generous);
        Assert.True(await Client.CancelRunAsync(handle.RunId));
        await Assert.ThrowsAsync<CanceledException>(() => handle.ResultAsync(Generous));
        release.SetResult();
        await EventuallyAsync(async () => (await TestEnv.Store(Prefix).GetRunAsync(handle.RunId))!.Status == RunStatus.Canceled, "stays canceled");
        Assert.Empty(await Client.GetRunStepsAsync(handle.RunId));
    }

    [Fact]
    public async Task G9_canceling_a_waiting_parent_cancels_its_child()
    {
        var childStarted = new TaskCompletionSource();
        var child = Workflows.Define<Order, int>("slow-child", async ctx =>
        {
            childStarted.TrySetResult();
            await Task.Delay(TimeSpan.FromSeconds(30), ctx.CancellationToken);
            return 1;
        }, new WorkflowOptions { MaxConcurrency = 10 });
        var parent = Workflows.Define<Order, int>("waits", async ctx =>
            await ctx.Step.RunWorkflowAsync<int>("c", "slow-child", ctx.Input), new WorkflowOptions { MaxConcurrency = 10 });
        await StartWorkerAsync(parent, child);
        var handle = await Client.EmitWorkflowAsync(parent, new Order("x", 1));
        await childStarted.Task.WaitAsync(Generous);
        await EventuallyAsync(async () => (await handle.GetStateAsync()).Status == RunStatus.Waiting, "the parent waits");
        Assert.True(await Client.CancelRunAsync(handle.RunId));
        await Assert.ThrowsAsync<CanceledException>(() => handle.ResultAsync(Generous));
        var childRun = Assert.Single(await Client.ListRunsAsync(new ListRunsParams { ParentRunId = handle.RunId }));
        await Assert.ThrowsAsync<CanceledException>(() => Client.GetHandle(childRun.Id).ResultAsync(Generous));
    }

    [Fact]
    public async Task G9_cancel_racing_completion_ends_in_exactly_one_terminal_state()
    {
        // Every fourth run waits for a gate that opens only after the cancels are sent, so some cancels surely win
        // (a fast worker could otherwise finish all 100 runs first); the others race their cancel freely.
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var workflow = Workflows.Define<Order, int>("racy", async ctx =>
        {
            if (ctx.Input.Amount % 4 == 0) await gate.Task.WaitAsync(ctx.CancellationToken);
            return ctx.Input.Amount;
        }, new WorkflowOptions { MaxConcurrency = 50 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [workflow], Concurrency = 20 });
        var handles = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Client.EmitWorkflowAsync(workflow, new Order("x", i))));
        var cancels = await Task.WhenAll(handles.Select(h => Client.CancelRunAsync(h.RunId)));
        gate.SetResult();
        var store = TestEnv.Store(Prefix);
        for (var i = 0; i < handles.Length; i++)
        {
            RunStatus status = RunStatus.Running;
            await EventuallyAsync(async () => Keys.IsTerminal(status = (await handle(i).GetStateAsync()).Status), "the run ends");
            if (status == RunStatus.Succeeded) Assert.Equal(i, await handle(i).ResultAsync<int>(Generous));
            else Assert.Equal(RunStatus.Canceled, status);
            // In exactly one status index.
            var found = 0;
            foreach (var s in Enum.GetValues<RunStatus>())
                if (await TestEnv.Db.SortedSetScoreAsync(store.Keys.WorkflowStatus("racy", s), handles[i].RunId) is not null) found++;
            Assert.Equal(1, found);
        }
        RunHandle handle(int i) => handles[i];
        Assert.All(Enumerable.Range(0, 100).Where(i => i % 4 == 0), i => Assert.True(cancels[i], $"the cancel of gated run {i} was accepted"));
    }

    [Fact]
    public async Task G5_max_concurrency_holds_across_two_workers_and_all_runs_finish()
    {
        var running = 0;
        var peak = 0;
        var capped = Workflows.Define<Order, int>("capped", async ctx =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            await ctx.Step.RunAsync("work", async ct => { await Task.Delay(30, ct); return 1; });
            Interlocked.Decrement(ref running);
            return 1;
        }, new WorkflowOptions { MaxConcurrency = 2 });
        var other = Workflows.Define<Order, int>("uncapped", async ctx => 2, new WorkflowOptions { MaxConcurrency = 50 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [capped, other], Concurrency = 8 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [capped, other], Concurrency = 8 });
        var store = TestEnv.Store(Prefix);
        var handles = await Task.WhenAll(Enumerable.Range(0, 30).Select(i => Client.EmitWorkflowAsync(capped, new Order("x", i))));
        // Another workflow on the same queue is not blocked behind the capped one.
        var free = await Client.EmitWorkflowAsync(other, new Order("y", 1));
        Assert.Equal(2, await free.ResultAsync(Generous));
        var sampledMax = 0L;
        var sampling = Task.Run(async () =>
        {
            while (!handles.All(h => h.GetStateAsync().Result.Status == RunStatus.Succeeded))
                sampledMax = Math.Max(sampledMax, await TestEnv.Db.SetLengthAsync(store.Keys.Running("capped")));
        });
        foreach (var h in handles) await h.ResultAsync(Generous);
        await sampling;
        Assert.True(peak <= 2, $"peak {peak}");
        Assert.True(sampledMax <= 2, $"sampled {sampledMax}");
    }

    [Fact]
    public async Task G8_OnFailure_runs_once_for_a_run_that_failed_for_good_and_never_on_cancel()
    {
        var calls = new ConcurrentQueue<OnFailureContext>();
        var workflow = Workflows.Define<Order, int>("with-handler", async ctx =>
        {
            if (ctx.Input.Amount < 0) throw new NonRetriableException("negative");
            await Task.Delay(TimeSpan.FromSeconds(30), ctx.CancellationToken);
            return 1;
        }, new WorkflowOptions
        {
            MaxConcurrency = 10,
            OnFailure = ctx =>
            {
                calls.Enqueue(ctx);
                throw new InvalidOperationException("a failing handler does not change the outcome");
            },
        });
        await StartWorkerAsync(workflow);
        var failing = await Client.EmitWorkflowAsync(workflow, new Order("f", -1));
        var canceled = await Client.EmitWorkflowAsync(workflow, new Order("c", 1));
        await Assert.ThrowsAsync<RunFailedException>(() => failing.ResultAsync(Generous));
        await EventuallyAsync(() => Task.FromResult(!calls.IsEmpty), "OnFailure was called");
        await EventuallyAsync(async () => (await canceled.GetStateAsync()).Status == RunStatus.Running, "the other run runs");
        await Client.CancelRunAsync(canceled.RunId);
        await Assert.ThrowsAsync<CanceledException>(() => canceled.ResultAsync(Generous));
        var store = TestEnv.Store(Prefix);
        await EventuallyAsync(async () => await TestEnv.Db.SortedSetLengthAsync(store.Keys.OnFailure) == 0, "no OnFailure call is pending");
        var call = Assert.Single(calls);
        Assert.Equal(failing.RunId, call.Run.Id);
        Assert.Equal("negative", call.Error.Message);
        Assert.Equal(-1, call.Input.GetProperty("amount").GetInt32());
        Assert.Equal(RunStatus.Failed, (await RunAsync(failing.RunId)).Status);
    }

    [Fact]
    public async Task G8_a_pending_OnFailure_call_of_a_dead_worker_is_made_by_another()
    {
        var calls = new ConcurrentQueue<string>();
        var workflow = Workflows.Define<Order, int>("orphan-failure", async ctx => 1,
            new WorkflowOptions { OnFailure = ctx => { calls.Enqueue(ctx.Run.Id); return Task.CompletedTask; } });
        await StartWorkerAsync(workflow);
        // A run that failed on a worker that died before making the call: its pending call is in Redis, due now.
        var handle = await Client.EmitWorkflowAsync(workflow, new Order("x", 1), new EmitOptions { Delay = TimeSpan.FromHours(1) });
        var store = TestEnv.Store(Prefix);
        await TestEnv.Db.HashSetAsync(store.Keys.Run(handle.RunId), [new("status", "failed"), new("error", "{\"type\":\"X\",\"message\":\"died\"}")]);
        await TestEnv.Db.SortedSetAddAsync(store.Keys.OnFailure, handle.RunId, 0);
        await EventuallyAsync(() => Task.FromResult(calls.Contains(handle.RunId)), "another worker made the call");
        await EventuallyAsync(async () => await TestEnv.Db.SortedSetLengthAsync(store.Keys.OnFailure) == 0, "the call is no longer pending");
        Assert.Single(calls);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current) { }
    }

    [Fact]
    public async Task G4_an_idle_worker_is_seen_every_third_of_its_lease_so_a_lapsed_lease_is_not_taken_for_its_death()
    {
        // Its fallback claim every 4 s and its heartbeat every 5 s would leave it unseen for longer than the lease.
        var worker = await StartWorkerAsync(new StartWorkerOptions { Workflows = [Double], Lease = TimeSpan.FromSeconds(1), BlmoveTimeout = TimeSpan.FromSeconds(4) });
        var keys = new Keys(Prefix);
        async Task<double> SeenAsync() => await TestEnv.Db.SortedSetScoreAsync(keys.WorkersSeen, worker.Node) ?? 0;
        // Far more often than its 5 s heartbeat: the renewer marks it seen even with no lease to renew.
        for (var i = 0; i < 3; i++)
        {
            var before = await SeenAsync();
            await EventuallyAsync(async () => await SeenAsync() > before, "the idle worker is seen again", TimeSpan.FromSeconds(2));
        }
    }
}
