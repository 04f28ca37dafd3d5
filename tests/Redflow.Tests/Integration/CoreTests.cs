using System.Collections.Concurrent;
using Redflow.Protocol;

namespace Redflow.Tests.Integration;

public sealed record Signup(string UserId);
public sealed record Sent(bool Ok, string Email);

public sealed class CoreTests : WorkerTest
{
    private static WorkflowDefinition<Signup, Sent> Welcome(ConcurrentBag<string>? calls = null, WorkflowOptions? options = null) =>
        Workflows.Define<Signup, Sent>("send-welcome-email", async ctx =>
        {
            var email = await ctx.Step.RunAsync("fetch-user", ct =>
            {
                calls?.Add("fetch-user");
                return Task.FromResult($"{ctx.Input.UserId}@example.com");
            });
            await ctx.Step.RunAsync("send-email", ct =>
            {
                calls?.Add("send-email");
                return Task.CompletedTask;
            });
            return new Sent(true, email);
        }, options ?? new WorkflowOptions { MaxConcurrency = 10 });

    [Fact]
    public async Task G1_emit_is_in_redis_when_it_returns_and_the_result_arrives()
    {
        var workflow = Welcome();
        await StartWorkerAsync(workflow);
        var handle = await Client.EmitWorkflowAsync(workflow, new Signup("u1"));

        var stored = await Client.GetRunAsync(handle.RunId);
        Assert.NotNull(stored);
        Assert.Equal("send-welcome-email", stored.Workflow);
        Assert.Equal("u1", stored.Input.GetProperty("user_id").GetString());

        var result = await handle.ResultAsync(Generous);
        Assert.Equal(new Sent(true, "u1@example.com"), result);
        var run = await RunAsync(handle.RunId);
        Assert.Equal(RunStatus.Succeeded, run.Status);
        Assert.Equal(1, run.Attempt);
        Assert.NotNull(run.FinishedAt);
        var steps = await Client.GetRunStepsAsync(handle.RunId);
        Assert.Equal(["fetch-user", "send-email"], steps.Select(s => s.Name));
        Assert.All(steps, s => Assert.Equal(RunStatus.Succeeded, s.Status));
    }

    [Fact]
    public async Task Untyped_emit_by_name_round_trips_json()
    {
        var echo = Workflows.Define("echo", async ctx => new { got = ctx.Input, n = 42 });
        await StartWorkerAsync(echo);
        var handle = await Client.EmitWorkflowAsync("echo", new { user_id = "x", nested = new[] { 1, 2 } });
        var output = await handle.ResultAsync(Generous);
        Assert.Equal("x", output.GetProperty("got").GetProperty("user_id").GetString());
        Assert.Equal(42, output.GetProperty("n").GetInt32());
        Assert.Equal(RunStatus.Succeeded, (await handle.GetStateAsync()).Status);
    }

    [Fact]
    public async Task Emit_of_an_unregistered_workflow_names_the_known_ones()
    {
        await StartWorkerAsync(Welcome());
        var ex = await Assert.ThrowsAsync<UnknownWorkflowException>(() => Client.EmitWorkflowAsync("nope", null));
        Assert.Contains("send-welcome-email", ex.Message);
        Assert.Contains("nope", ex.Message);
    }

    [Fact]
    public async Task G7_idempotent_emit_under_20_concurrent_callers_makes_one_run()
    {
        var workflow = Welcome();
        await StartWorkerAsync(workflow);
        var handles = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ =>
            Client.EmitWorkflowAsync(workflow, new Signup("u2"), new EmitOptions { IdempotencyKey = "welcome:u2" })));
        Assert.Single(handles.Select(h => h.RunId).Distinct());
        await handles[0].ResultAsync(Generous);
        Assert.Single(await Client.ListRunsAsync(new ListRunsParams { Workflow = "send-welcome-email" }));
        // After the run finished, the key still finds the same run (it is kept for its window).
        var again = await Client.EmitWorkflowAsync(workflow, new Signup("u2"), new EmitOptions { IdempotencyKey = "welcome:u2" });
        Assert.Equal(handles[0].RunId, again.RunId);
    }

    [Fact]
    public async Task G10_delayed_run_does_not_start_before_its_delay_on_the_redis_clock()
    {
        var workflow = Welcome();
        await StartWorkerAsync(workflow);
        var delay = TimeSpan.FromMilliseconds(1500);
        var handle = await Client.EmitWorkflowAsync(workflow, new Signup("u3"), new EmitOptions { Delay = delay });
        Assert.Equal(RunStatus.Scheduled, (await handle.GetStateAsync()).Status);
        await handle.ResultAsync(Generous);
        var run = await RunAsync(handle.RunId);
        Assert.True(run.StartedAt >= run.CreatedAt + delay, $"started {run.StartedAt:O}, created {run.CreatedAt:O}");
    }

    [Fact]
    public async Task G2_failing_step_is_retried_while_the_completed_step_before_it_is_not_rerun()
    {
        var calls = new ConcurrentDictionary<string, int>();
        var flaky = Workflows.Define<Signup, string>("flaky", async ctx =>
        {
            var a = await ctx.Step.RunAsync("first", ct => Task.FromResult(calls.AddOrUpdate("first", 1, (_, n) => n + 1)));
            var b = await ctx.Step.RunAsync("second", ct =>
            {
                var n = calls.AddOrUpdate("second", 1, (_, v) => v + 1);
                if (n < 3) throw new InvalidOperationException($"transient {n}");
                return Task.FromResult(n);
            });
            return $"{a}-{b}-attempt{ctx.Run.Attempt}";
        }, new WorkflowOptions { MaxAttempts = 5, Retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(50) } });
        await StartWorkerAsync(flaky);
        var handle = await Client.EmitWorkflowAsync(flaky, new Signup("u4"));
        Assert.Equal("1-3-attempt3", await handle.ResultAsync(Generous));
        Assert.Equal(1, calls["first"]);
        Assert.Equal(3, calls["second"]);
        var run = await RunAsync(handle.RunId);
        Assert.Equal(3, run.Attempt);
        Assert.Null(run.Error); // it succeeded: the failed attempts' errors are in its attempt history
        var store = await ((RedisRedflowClient)Client).StoreAsync();
        Assert.Equal(["transient 1", "transient 2"], (await store.GetAttemptErrorsAsync(handle.RunId)).Select(a => a.Error.Message));
        var steps = await Client.GetRunStepsAsync(handle.RunId);
        Assert.Equal(1, steps.Single(s => s.Name == "first").Attempt);
        Assert.Equal(3, steps.Single(s => s.Name == "second").Attempt);
    }

    [Fact]
    public async Task G8_retries_wait_for_the_backoff()
    {
        var flaky = Workflows.Define<Signup, int>("backoff", async ctx =>
        {
            if (ctx.Run.Attempt < 3) throw new InvalidOperationException("again");
            return ctx.Run.Attempt;
        }, new WorkflowOptions { MaxAttempts = 3, Retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(300), BackoffCoefficient = 2 } });
        await StartWorkerAsync(flaky);
        var handle = await Client.EmitWorkflowAsync(flaky, new Signup("u5"));
        Assert.Equal(3, await handle.ResultAsync(Generous));
        var run = await RunAsync(handle.RunId);
        // Backoff 300 ms then 600 ms, on the Redis clock: the last attempt was available no earlier than 900 ms after the first start.
        Assert.True(run.AvailableAt - run.StartedAt >= TimeSpan.FromMilliseconds(900), $"started {run.StartedAt:O}, last available {run.AvailableAt:O}");
    }

    [Fact]
    public async Task G8_non_retriable_exception_fails_the_run_at_once()
    {
        var attempts = 0;
        var fatal = Workflows.Define<Signup, int>("fatal", async ctx =>
        {
            Interlocked.Increment(ref attempts);
            throw new NonRetriableException("card declined");
        }, new WorkflowOptions { MaxAttempts = 5 });
        await StartWorkerAsync(fatal);
        var handle = await Client.EmitWorkflowAsync(fatal, new Signup("u6"));
        var ex = await Assert.ThrowsAsync<RunFailedException>(() => handle.ResultAsync(Generous));
        Assert.Equal("card declined", ex.Error.Message);
        Assert.Equal(typeof(NonRetriableException).FullName, ex.Error.Type);
        Assert.Equal(1, attempts);
        Assert.Equal(1, (await RunAsync(handle.RunId)).Attempt);
    }

    [Fact]
    public async Task G8_exhausted_attempts_fail_the_run_with_the_last_error()
    {
        var failing = Workflows.Define<Signup, int>("always-fails", async ctx =>
            await ctx.Step.RunAsync<int>("boom", ct => throw new InvalidOperationException($"boom {ctx.Run.Attempt}")),
            new WorkflowOptions { MaxAttempts = 2, Retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(20) } });
        await StartWorkerAsync(failing);
        var handle = await Client.EmitWorkflowAsync(failing, new Signup("u7"));
        var ex = await Assert.ThrowsAsync<RunFailedException>(() => handle.ResultAsync(Generous));
        Assert.Equal("boom 2", ex.Error.Message);
        Assert.NotNull(ex.Error.StackTrace);
        var run = await RunAsync(handle.RunId);
        Assert.Equal(RunStatus.Failed, run.Status);
        Assert.Equal(2, run.Attempt);
        var step = Assert.Single(await Client.GetRunStepsAsync(handle.RunId));
        Assert.Equal(RunStatus.Failed, step.Status);
        Assert.Equal("boom 2", step.Error!.Message);
    }

    [Fact]
    public async Task Typed_emit_rejects_invalid_input_before_writing_anything()
    {
        var workflow = Workflows.Define<Signup, int>("typed", async ctx => 1);
        await StartWorkerAsync(workflow);
        await Assert.ThrowsAsync<InputValidationException>(() => Client.EmitWorkflowAsync(workflow, new Signup(null!)));
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "typed" }));
    }

    [Fact]
    public async Task Input_that_does_not_fit_fails_the_run_without_retries_naming_the_path()
    {
        var workflow = Workflows.Define<Signup, int>("typed-input", async ctx => 1, new WorkflowOptions { MaxAttempts = 3 });
        await StartWorkerAsync(workflow);
        var handle = await Client.EmitWorkflowAsync("typed-input", new { user_id = 12 });
        var ex = await Assert.ThrowsAsync<RunFailedException>(() => handle.ResultAsync(Generous));
        Assert.Equal(typeof(InputValidationException).FullName, ex.Error.Type);
        Assert.Contains("$.user_id", ex.Error.Message);
        Assert.Equal(1, (await RunAsync(handle.RunId)).Attempt);
    }

    [Fact]
    public async Task G3_a_worker_whose_lease_was_taken_over_cannot_record_anything()
    {
        var inStep = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        var tokens = new ConcurrentQueue<CancellationToken>();
        var first = true;
        var workflow = Workflows.Define<Signup, string>("fenced", async ctx =>
        {
            var mine = Interlocked.Exchange(ref first, false);
            tokens.Enqueue(ctx.CancellationToken);
            return await ctx.Step.RunAsync("write", async ct =>
            {
                if (mine)
                {
                    inStep.TrySetResult();
                    await release.Task; // ignores its token on purpose: a zombie
                    return "stale";
                }
                return "fresh";
            });
        }, new WorkflowOptions { MaxConcurrency = 5 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [workflow], Lease = TimeSpan.FromSeconds(30) });
        var handle = await Client.EmitWorkflowAsync(workflow, new Signup("u8"));
        await inStep.Task.WaitAsync(Generous);

        // Take the run over behind the first worker's back: expire its lease in Redis and let the reaper requeue it;
        // the same worker claims it again under a new fencing token (a second holder).
        var store = TestEnv.Store(Prefix);
        var before = (await RunAsync(handle.RunId)).Resumes;
        await TestEnv.Db.SortedSetAddAsync(store.Keys.Leases("default"), handle.RunId, 0);
        Assert.Equal("fresh", await handle.ResultAsync(Generous));
        Assert.True((await RunAsync(handle.RunId)).Resumes > before);

        // The zombie finishes its step now: its record is rejected, the recorded value stays the second holder's.
        release.SetResult();
        await EventuallyAsync(() => Task.FromResult(tokens.First().IsCancellationRequested), "the stale handler's token is canceled");
        var step = Assert.Single(await Client.GetRunStepsAsync(handle.RunId));
        Assert.Equal("fresh", step.Output!.Value.GetString());
        Assert.Equal("fresh", (await RunAsync(handle.RunId)).Output!.Value.GetString());
    }

    [Fact]
    public async Task A_pooled_RunActor_s_next_run_is_untouched_by_the_late_messages_of_its_previous_run()
    {
        // One slot, so one pooled RunActor holds one run after the other. Its first run loses its lease while its
        // handler (a zombie, ignoring its token) runs on; the next run on the same actor is the same run, taken over.
        // The zombie's late step record, step call and result reach the actor while it holds the next run.
        var zombieInStep = new TaskCompletionSource();
        var freshInStep = new TaskCompletionSource();
        var releaseZombie = new TaskCompletionSource();
        var releaseFresh = new TaskCompletionSource();
        var zombieDone = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var invocation = 0;
        var workflow = Workflows.Define<Signup, string>("pooled", async ctx =>
        {
            if (ctx.Input.UserId != "x") return "other";
            if (Interlocked.Increment(ref invocation) > 1)
                return await ctx.Step.RunAsync("write", async ct =>
                {
                    freshInStep.TrySetResult();
                    await releaseFresh.Task;
                    return "fresh";
                });
            try
            {
                await ctx.Step.RunAsync("write", async ct =>
                {
                    zombieInStep.TrySetResult();
                    await releaseZombie.Task; // ignores its token on purpose
                    return "stale";
                });
            }
            catch (Exception)
            {
                // The lease is lost: a zombie goes on anyway, while the actor holds the next run.
            }
            await releaseZombie.Task;
            await Task.Delay(100);
            Exception? late = null;
            try { await ctx.Step.RunAsync("late", ct => Task.FromResult("late")); }
            catch (Exception ex) { late = ex; }
            zombieDone.TrySetResult(late);
            return "stale";
        }, new WorkflowOptions { MaxConcurrency = 5 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [workflow], Concurrency = 1, Lease = TimeSpan.FromSeconds(6) });
        var handle = await Client.EmitWorkflowAsync(workflow, new Signup("x"));
        await zombieInStep.Task.WaitAsync(Generous);

        // Take the run over: its lease expires in Redis; the renewer learns it is lost, the slot frees, and the same
        // worker claims the run again under a new token, on the same (only) RunActor.
        var store = TestEnv.Store(Prefix);
        await TestEnv.Db.SortedSetAddAsync(store.Keys.Leases("default"), handle.RunId, 0);
        await freshInStep.Task.WaitAsync(Generous);

        // Now the zombie's step ends (its record is fenced), it calls another step and returns: all late, for the run the
        // actor held before.
        releaseZombie.SetResult();
        var late = await zombieDone.Task.WaitAsync(Generous);
        Assert.True(late is LeaseLostException or OperationCanceledException, $"the zombie's late step call failed: {late}");
        await Task.Delay(300); // its result, told to the actor, comes and goes meanwhile

        releaseFresh.SetResult();
        Assert.Equal("fresh", await handle.ResultAsync(Generous));
        var steps = await Client.GetRunStepsAsync(handle.RunId);
        var step = Assert.Single(steps); // "late" never recorded
        Assert.Equal("write", step.Name);
        Assert.Equal("fresh", step.Output!.Value.GetString());
        Assert.Equal(2, Volatile.Read(ref invocation)); // the next run was not ended by the zombie's "lease lost" (no third holder)
        // The actor goes on with the next run as usual.
        Assert.Equal("other", await (await Client.EmitWorkflowAsync(workflow, new Signup("y"))).ResultAsync(Generous));
    }

    [Fact]
    public async Task Graceful_stop_hands_running_runs_back_and_loses_nothing()
    {
        var started = 0;
        var workflow = Workflows.Define<Signup, string>("slow", async ctx =>
        {
            Interlocked.Increment(ref started);
            await ctx.Step.RunAsync("wait", async ct => { await Task.Delay(TimeSpan.FromSeconds(30), ct); return 1; });
            return ctx.Input.UserId;
        }, new WorkflowOptions { MaxConcurrency = 10 });
        var quick = Workflows.Define<Signup, string>("slow", async ctx => ctx.Input.UserId, new WorkflowOptions { MaxConcurrency = 10 });
        var first = await StartWorkerAsync(new StartWorkerOptions { Workflows = [workflow], ShutdownTimeout = TimeSpan.FromMilliseconds(200) });
        var handles = await Task.WhenAll(Enumerable.Range(0, 5).Select(i => Client.EmitWorkflowAsync(workflow, new Signup($"s{i}"))));
        await EventuallyAsync(() => Task.FromResult(Volatile.Read(ref started) == 5), "all five runs started");

        await first.StopAsync();
        foreach (var h in handles)
        {
            var run = await RunAsync(h.RunId);
            Assert.Equal(RunStatus.Queued, run.Status);
            Assert.Equal(1, run.Attempt);   // a hand-back is not a failure
            Assert.Equal(1, run.Resumes);
        }
        await StartWorkerAsync(quick);
        foreach (var (h, i) in handles.Select((h, i) => (h, i)))
            Assert.Equal($"s{i}", await h.ResultAsync<string>(Generous));
    }

    [Fact]
    public async Task A_run_of_a_workflow_no_worker_has_fails_with_UnknownWorkflowException_after_the_grace()
    {
        var mine = Welcome();
        var nobodys = Workflows.Define<Signup, int>("nobodys", async ctx => 1); // emitted by definition, never registered
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [mine], UnknownWorkflowGrace = TimeSpan.FromMilliseconds(300) });
        var handle = await Client.EmitWorkflowAsync(nobodys, new Signup("x"));
        var ex = await Assert.ThrowsAsync<RunFailedException>(() => handle.ResultAsync(Generous));
        Assert.Equal(typeof(UnknownWorkflowException).FullName, ex.Error.Type);
        Assert.Contains("send-welcome-email", ex.Error.Message);
    }

    [Fact]
    public async Task Worker_options_are_validated_naming_the_option()
    {
        var workflow = Welcome();
        var ex = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            RedflowWorker.StartAsync(new StartWorkerOptions { Url = TestEnv.Url, Workflows = [workflow], Concurrency = 0 }));
        Assert.Equal("Concurrency", ex.ParamName);
        var prefix = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            RedflowWorker.StartAsync(new StartWorkerOptions { Url = TestEnv.Url, Workflows = [workflow], Prefix = "a{b}" }));
        Assert.Equal("prefix", prefix.ParamName);
    }
}
