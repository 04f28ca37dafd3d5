using System.Collections.Concurrent;

namespace Redflow.Tests.Integration;

/// <summary>Flow control (G13): per-key caps, rate limits, debounce and priority, enforced by the claim and emit scripts.</summary>
public sealed class FlowControlTests : WorkerTest
{
    public sealed record Job(string Name);

    [Fact]
    public async Task G13_runs_of_one_key_never_overlap_at_MaxConcurrencyPerKey_1_and_two_keys_run_beside_each_other()
    {
        var running = new ConcurrentDictionary<string, PeakCounter>();
        var both = new PeakCounter();
        var wf = Workflows.Define<Job, int>("per-key", async ctx =>
            await ctx.Step.RunAsync("work", async ct => await both.CountAsync(() =>
                running.GetOrAdd(ctx.Input.Name, _ => new PeakCounter()).CountAsync(async () => { await Task.Delay(150, ct); return 1; }))),
            new WorkflowOptions { MaxConcurrency = 10, MaxConcurrencyPerKey = 1 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [wf], Concurrency = 4 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [wf], Concurrency = 4 });
        var handles = new List<RunHandle<int>>();
        for (var i = 0; i < 6; i++)
            foreach (var key in new[] { "tenant-a", "tenant-b" })
                handles.Add(await Client.EmitWorkflowAsync(wf, new Job(key), new EmitOptions { Key = key }));
        foreach (var h in handles) Assert.Equal(1, await h.ResultAsync(Generous));
        Assert.Equal(1, running["tenant-a"].Peak);
        Assert.Equal(1, running["tenant-b"].Peak);
        Assert.Equal(2, both.Peak); // the two keys ran beside each other
        Assert.Equal("tenant-a", (await RunAsync(handles[0].RunId)).Key);
    }

    [Fact]
    public async Task G13_a_key_at_its_cap_does_not_hold_back_another_key_nor_runs_without_a_key()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var wf = Workflows.Define<Job, string>("hol", async ctx =>
        {
            if (ctx.Input.Name == "busy") await ctx.Step.RunAsync("hold", async ct => { await gate.Task.WaitAsync(ct); return 1; });
            return ctx.Input.Name;
        }, new WorkflowOptions { MaxConcurrency = 10, MaxConcurrencyPerKey = 1 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [wf], Concurrency = 4 });
        var busy = await Client.EmitWorkflowAsync(wf, new Job("busy"), new EmitOptions { Key = "big" });
        await EventuallyAsync(async () => (await RunAsync(busy.RunId)).Status == RunStatus.Running, "the big key's first run holds its slot");
        // Many more runs of the key at its cap, emitted first; then one run of another key and one without a key.
        var queued = new List<RunHandle<string>>();
        for (var i = 0; i < 50; i++) queued.Add(await Client.EmitWorkflowAsync(wf, new Job("more"), new EmitOptions { Key = "big" }));
        var other = await Client.EmitWorkflowAsync(wf, new Job("other"), new EmitOptions { Key = "small" });
        var plain = await Client.EmitWorkflowAsync(wf, new Job("plain"));
        Assert.Equal("other", await other.ResultAsync(Generous));
        Assert.Equal("plain", await plain.ResultAsync(Generous));
        Assert.All(await Task.WhenAll(queued.Select(q => RunAsync(q.RunId))), r => Assert.Equal(RunStatus.Queued, r.Status));

        var meta = (await Client.GetWorkflowMetaAsync("hol"))!;
        Assert.Equal(1, meta.MaxConcurrencyPerKey);
        Assert.Equal(50, meta.HeldBack);
        var key = Assert.Single(meta.HeldBackKeys);
        Assert.Equal(new HeldBackKey("big", 50, 1), key);
        Assert.Equal(50, (await Client.GetQueueWorkflowStatsAsync()).Single(q => q.Workflow == "hol").Ready); // held-back runs are ready runs
        Assert.Equal(50, (await Client.GetStatsAsync()).Queues.Single(q => q.Name == "default").Ready);

        gate.SetResult();
        foreach (var q in queued) Assert.Equal("more", await q.ResultAsync(Generous)); // released: the key's runs follow, none lost
        Assert.Equal(0, (await Client.GetWorkflowMetaAsync("hol"))!.HeldBack);
    }

    [Fact]
    public async Task G13_a_rate_limit_of_5_per_2s_spreads_15_runs_over_two_workers_and_drops_none()
    {
        var wf = Workflows.Define<Job, string>("rated", async ctx => ctx.Input.Name,
            new WorkflowOptions { MaxConcurrency = 20, RateLimit = new RateLimit(5, TimeSpan.FromSeconds(2)) });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [wf], Concurrency = 10 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [wf], Concurrency = 10 });
        var handles = new List<RunHandle<string>>();
        for (var i = 0; i < 15; i++) handles.Add(await Client.EmitWorkflowAsync(wf, new Job($"r{i}")));
        foreach (var h in handles) await h.ResultAsync(TimeSpan.FromSeconds(60));
        var starts = (await Task.WhenAll(handles.Select(h => RunAsync(h.RunId)))).Select(r => r.StartedAt!.Value).Order().ToList();
        // At most 5 starts in any window of 2 s (Redis clock), so 15 take at least two full windows.
        for (var i = 5; i < starts.Count; i++)
            Assert.True(starts[i] - starts[i - 5] >= TimeSpan.FromSeconds(2), $"starts {i - 5} and {i} are {starts[i] - starts[i - 5]} apart");
        Assert.True(starts[^1] - starts[0] >= TimeSpan.FromSeconds(4));
    }

    [Fact]
    public async Task G13_a_rate_limit_per_key_holds_one_key_and_lets_another_start()
    {
        var wf = Workflows.Define<Job, string>("rated-key", async ctx => ctx.Input.Name,
            new WorkflowOptions { MaxConcurrency = 20, RateLimit = new RateLimit(2, TimeSpan.FromSeconds(30)) });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [wf], Concurrency = 10 });
        var first = new List<RunHandle<string>>();
        for (var i = 0; i < 4; i++) first.Add(await Client.EmitWorkflowAsync(wf, new Job("a"), new EmitOptions { Key = "a" }));
        await first[0].ResultAsync(Generous);
        await first[1].ResultAsync(Generous);
        var b = await Client.EmitWorkflowAsync(wf, new Job("b"), new EmitOptions { Key = "b" });
        Assert.Equal("b", await b.ResultAsync(Generous));
        Assert.Equal(RunStatus.Queued, (await RunAsync(first[2].RunId)).Status); // key a used its 2 starts of this window
        Assert.Equal(RunStatus.Queued, (await RunAsync(first[3].RunId)).Status);
        var meta = (await Client.GetWorkflowMetaAsync("rated-key"))!;
        Assert.Equal(new RateLimit(2, TimeSpan.FromSeconds(30)), meta.RateLimit);
        Assert.Equal(2, meta.HeldBack);
    }

    [Fact]
    public async Task G13_debounce_folds_five_emits_into_one_run_with_the_last_input()
    {
        var inputs = new ConcurrentQueue<string>();
        var wf = Workflows.Define<Job, string>("debounced", async ctx => { inputs.Enqueue(ctx.Input.Name); return ctx.Input.Name; },
            new WorkflowOptions { MaxConcurrency = 5, Debounce = new DebounceOptions(TimeSpan.FromMilliseconds(600)) { MaxWait = TimeSpan.FromSeconds(20) } });
        await StartWorkerAsync(wf);
        var handles = new List<RunHandle<string>>();
        for (var i = 1; i <= 5; i++)
            handles.Add(await Client.EmitWorkflowAsync(wf, new Job($"v{i}"), new EmitOptions { Key = "profile-7", IdempotencyKey = $"change-{i}" }));
        var other = await Client.EmitWorkflowAsync(wf, new Job("other"), new EmitOptions { Key = "profile-8" });
        Assert.Single(handles.Select(h => h.RunId).Distinct()); // every emit's handle points at the one pending run
        Assert.NotEqual(handles[0].RunId, other.RunId);           // another key has its own
        Assert.Equal(RunStatus.Scheduled, (await RunAsync(handles[0].RunId)).Status);
        Assert.Equal("v5", await handles[0].ResultAsync(Generous));
        Assert.Equal("other", await other.ResultAsync(Generous));
        Assert.Equal(["v5"], inputs.Where(i => i != "other"));
        // Idempotency keys still hold: a repeat of the third emit returns the run it folded into.
        var again = await Client.EmitWorkflowAsync(wf, new Job("v3 again"), new EmitOptions { Key = "profile-7", IdempotencyKey = "change-3" });
        Assert.Equal(handles[0].RunId, again.RunId);
        // An emit after the run started begins a new pending run.
        var next = await Client.EmitWorkflowAsync(wf, new Job("v6"), new EmitOptions { Key = "profile-7" });
        Assert.NotEqual(handles[0].RunId, next.RunId);
        Assert.Equal("v6", await next.ResultAsync(Generous));
        await Assert.ThrowsAsync<ArgumentException>(() => Client.EmitWorkflowAsync(wf, new Job("late"), new EmitOptions { Delay = TimeSpan.FromSeconds(1) }));
    }

    [Fact]
    public async Task G13_debounce_starts_at_MaxWait_after_the_first_emit_however_many_follow()
    {
        var wf = Workflows.Define<Job, string>("debounce-max", async ctx => ctx.Input.Name,
            new WorkflowOptions { Debounce = new DebounceOptions(TimeSpan.FromMilliseconds(800)) { MaxWait = TimeSpan.FromMilliseconds(1500) } });
        await StartWorkerAsync(wf);
        var first = await Client.EmitWorkflowAsync(wf, new Job("e0"));
        var created = (await RunAsync(first.RunId)).CreatedAt;
        var i = 0;
        while ((await RunAsync(first.RunId)).Status == RunStatus.Scheduled && i < 200)
        {
            await Client.EmitWorkflowAsync(wf, new Job($"e{++i}")); // an emit every 100 ms: the period alone would never end
            await Task.Delay(100);
        }
        await first.ResultAsync(Generous);
        var run = await RunAsync(first.RunId);
        Assert.True(run.StartedAt!.Value - created < TimeSpan.FromSeconds(6), $"started {run.StartedAt - created} after the first emit");
        Assert.True(i >= 5);
    }

    [Fact]
    public async Task G13_priority_higher_first_across_workflows_equal_priorities_in_emit_order()
    {
        var order = new ConcurrentQueue<string>();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var blocker = Workflows.Define<Job, string>("blocker", async ctx => { await ctx.Step.RunAsync("hold", async ct => { await gate.Task.WaitAsync(ct); return 1; }); return ""; },
            new WorkflowOptions { Queue = "prio" });
        var a = Workflows.Define<Job, string>("prio-a", async ctx => { order.Enqueue(ctx.Input.Name); return ctx.Input.Name; }, new WorkflowOptions { Queue = "prio", MaxConcurrency = 5 });
        var b = Workflows.Define<Job, string>("prio-b", async ctx => { order.Enqueue(ctx.Input.Name); return ctx.Input.Name; }, new WorkflowOptions { Queue = "prio", MaxConcurrency = 5 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [blocker, a, b], Concurrency = 1 }); // one slot
        var held = await Client.EmitWorkflowAsync(blocker, new Job("x"));
        await EventuallyAsync(async () => (await RunAsync(held.RunId)).Status == RunStatus.Running, "the only slot is taken");
        var handles = new List<RunHandle<string>>
        {
            await Client.EmitWorkflowAsync(a, new Job("a0-1")),
            await Client.EmitWorkflowAsync(a, new Job("a5-1"), new EmitOptions { Priority = 5 }),
            await Client.EmitWorkflowAsync(b, new Job("b9"), new EmitOptions { Priority = 9 }),
            await Client.EmitWorkflowAsync(a, new Job("a0-2")),
            await Client.EmitWorkflowAsync(b, new Job("b-3"), new EmitOptions { Priority = -3 }),
            await Client.EmitWorkflowAsync(a, new Job("a5-2"), new EmitOptions { Priority = 5 }),
        };
        Assert.Equal(6, (await Client.GetStatsAsync()).Queues.Single(q => q.Name == "prio").Ready); // every priority's ready runs count
        gate.SetResult();
        foreach (var h in handles) await h.ResultAsync(Generous);
        Assert.Equal(["b9", "a5-1", "a5-2", "a0-1", "a0-2", "b-3"], order);
        Assert.Equal(5, (await RunAsync(handles[1].RunId)).Priority);
    }

    [Fact]
    public async Task G13_a_capped_workflows_high_priority_runs_do_not_block_other_workflows()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var capped = Workflows.Define<Job, string>("capped-hi", async ctx => { await ctx.Step.RunAsync("hold", async ct => { await gate.Task.WaitAsync(ct); return 1; }); return ctx.Input.Name; },
            new WorkflowOptions { Queue = "prio2", MaxConcurrency = 1 });
        var other = Workflows.Define<Job, string>("other-lo", async ctx => ctx.Input.Name, new WorkflowOptions { Queue = "prio2", MaxConcurrency = 5 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [capped, other], Concurrency = 4 });
        var first = await Client.EmitWorkflowAsync(capped, new Job("c0"), new EmitOptions { Priority = 10 });
        await EventuallyAsync(async () => (await RunAsync(first.RunId)).Status == RunStatus.Running, "the capped workflow is at its cap");
        var more = await Client.EmitWorkflowAsync(capped, new Job("c1"), new EmitOptions { Priority = 10 });
        var low = await Client.EmitWorkflowAsync(other, new Job("low"));
        Assert.Equal("low", await low.ResultAsync(Generous));
        Assert.Equal(RunStatus.Queued, (await RunAsync(more.RunId)).Status);
        gate.SetResult();
        Assert.Equal("c1", await more.ResultAsync(Generous));
    }

    [Fact]
    public async Task G13_a_canceled_queued_run_with_a_key_or_a_priority_leaves_its_list_and_nothing_else_is_lost()
    {
        var wf = Workflows.Define<Job, string>("cancel-flow", async ctx => ctx.Input.Name, new WorkflowOptions { MaxConcurrency = 5, MaxConcurrencyPerKey = 1, Queue = "cf" });
        var keyed = await Client.EmitWorkflowAsync(wf, new Job("k"), new EmitOptions { Key = "k1" });
        var prio = await Client.EmitWorkflowAsync(wf, new Job("p"), new EmitOptions { Priority = 3 });
        var kept = await Client.EmitWorkflowAsync(wf, new Job("kept"), new EmitOptions { Key = "k1", Priority = 3 });
        Assert.True(await Client.CancelRunAsync(keyed.RunId));
        Assert.True(await Client.CancelRunAsync(prio.RunId));
        var other = await Client.EmitWorkflowAsync(wf, new Job("k2"), new EmitOptions { Key = "k2" });
        Assert.True(await Client.CancelRunAsync(other.RunId)); // the key's only run: its marker leaves the ready list too
        Assert.Equal(0, (await Client.GetQueueWorkflowStatsAsync()).Where(q => q.Queue == "cf").Sum(q => q.Ready) - 1); // only "kept" is ready
        await StartWorkerAsync(wf);
        Assert.Equal("kept", await kept.ResultAsync(Generous));
        Assert.Equal(RunStatus.Canceled, (await RunAsync(keyed.RunId)).Status);
        Assert.Equal(RunStatus.Canceled, (await RunAsync(prio.RunId)).Status);
    }

    [Fact]
    public async Task G13_a_waiting_run_holds_no_key_slot_and_a_retried_run_keeps_its_key()
    {
        var attempts = 0;
        var wf = Workflows.Define<Job, string>("wait-key", async ctx =>
        {
            if (ctx.Input.Name == "sleeper") await ctx.Step.SleepAsync("nap", TimeSpan.FromSeconds(2));
            if (ctx.Input.Name == "flaky" && Interlocked.Increment(ref attempts) == 1) throw new InvalidOperationException("first attempt fails");
            return ctx.Input.Name;
        }, new WorkflowOptions { MaxConcurrency = 5, MaxConcurrencyPerKey = 1, Retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(50) } });
        await StartWorkerAsync(wf);
        var sleeper = await Client.EmitWorkflowAsync(wf, new Job("sleeper"), new EmitOptions { Key = "k" });
        await EventuallyAsync(async () => (await RunAsync(sleeper.RunId)).Status == RunStatus.Waiting, "the first run sleeps");
        var flaky = await Client.EmitWorkflowAsync(wf, new Job("flaky"), new EmitOptions { Key = "k" });
        Assert.Equal("flaky", await flaky.ResultAsync(Generous)); // ran (twice) while the sleeper waited: it held no slot
        Assert.Equal(2, (await RunAsync(flaky.RunId)).Attempt);
        Assert.Equal("sleeper", await sleeper.ResultAsync(Generous));
    }

    [Fact]
    public async Task Bad_flow_control_input_is_refused_with_an_error_naming_it_and_nothing_written()
    {
        var wf = Workflows.Define<Job, string>("flow-bad", async ctx => ctx.Input.Name);
        await StartWorkerAsync(wf);
        var tooLong = await Assert.ThrowsAsync<ArgumentException>(() => Client.EmitWorkflowAsync(wf, new Job("x"), new EmitOptions { Key = new string('k', 2000) }));
        Assert.Contains("flow-control key", tooLong.Message);
        var control = await Assert.ThrowsAsync<ArgumentException>(() => Client.EmitWorkflowAsync(wf, new Job("x"), new EmitOptions { Key = "a\nb" }));
        Assert.Contains("control character", control.Message);
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "flow-bad" }));

        Assert.Contains("MaxConcurrencyPerKey", Assert.ThrowsAny<ArgumentException>(() => Workflows.Define<Job, string>("b1", async ctx => "", new WorkflowOptions { MaxConcurrencyPerKey = 0 })).Message);
        Assert.Contains("RateLimit.Limit", Assert.ThrowsAny<ArgumentException>(() => Workflows.Define<Job, string>("b2", async ctx => "", new WorkflowOptions { RateLimit = new RateLimit(0, TimeSpan.FromSeconds(1)) })).Message);
        Assert.Contains("RateLimit.Period", Assert.ThrowsAny<ArgumentException>(() => Workflows.Define<Job, string>("b3", async ctx => "", new WorkflowOptions { RateLimit = new RateLimit(1, TimeSpan.Zero) })).Message);
        Assert.Contains("Debounce.Period", Assert.ThrowsAny<ArgumentException>(() => Workflows.Define<Job, string>("b4", async ctx => "", new WorkflowOptions { Debounce = new DebounceOptions(TimeSpan.FromSeconds(-1)) })).Message);
        Assert.Contains("Debounce.MaxWait", Assert.ThrowsAny<ArgumentException>(() => Workflows.Define<Job, string>("b5", async ctx => "",
            new WorkflowOptions { Debounce = new DebounceOptions(TimeSpan.FromSeconds(10)) { MaxWait = TimeSpan.FromSeconds(5) } })).Message);
    }
}
