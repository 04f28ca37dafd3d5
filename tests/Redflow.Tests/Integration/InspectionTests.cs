using Redflow.Protocol;

namespace Redflow.Tests.Integration;

/// <summary>Listing, metadata, stats, steps, rerun, retention and payload limits.</summary>
public sealed class InspectionTests : WorkerTest
{
    private static WorkflowDefinition<Order, int> Echo(string name, TimeSpan? retention = null) =>
        Workflows.Define<Order, int>(name, async ctx =>
        {
            if (ctx.Input.Amount < 0) throw new NonRetriableException("negative");
            return await ctx.Step.RunAsync("amount", ct => Task.FromResult(ctx.Input.Amount));
        }, new WorkflowOptions { MaxConcurrency = 10, MaxAttempts = 2, Retention = retention ?? TimeSpan.FromDays(7) });

    [Fact]
    public async Task ListRuns_is_newest_first_filtered_and_paged()
    {
        var a = Echo("list-a");
        var b = Echo("list-b");
        await StartWorkerAsync(a, b);
        var handles = new List<RunHandle>();
        for (var i = 0; i < 5; i++) handles.Add(await Client.EmitWorkflowAsync(a, new Order("a", i)));
        var failed = await Client.EmitWorkflowAsync(b, new Order("b", -1));
        foreach (var h in handles) await h.ResultAsync(Generous);
        await Assert.ThrowsAsync<RunFailedException>(() => failed.ResultAsync(Generous));

        var all = await Client.ListRunsAsync();
        Assert.Equal(6, all.Count);
        Assert.Equal(failed.RunId, all[0].Id); // newest first
        Assert.Equal(all.OrderByDescending(r => r.CreatedAt).Select(r => r.CreatedAt), all.Select(r => r.CreatedAt));
        // Without a workflow filter, pages are merged from both workflows' indexes and stay consistent.
        var merged = await Client.ListRunsAsync(new ListRunsParams { Limit = 3, Offset = 2 });
        Assert.Equal(all.Skip(2).Take(3).Select(r => r.Id), merged.Select(r => r.Id));
        Assert.Equal(5, (await Client.ListRunsAsync(new ListRunsParams { Status = RunStatus.Succeeded })).Count);
        var ofA = await Client.ListRunsAsync(new ListRunsParams { Workflow = "list-a" });
        Assert.Equal(handles.Select(h => h.RunId).Reverse(), ofA.Select(r => r.Id));
        var page1 = await Client.ListRunsAsync(new ListRunsParams { Workflow = "list-a", Limit = 2 });
        var page2 = await Client.ListRunsAsync(new ListRunsParams { Workflow = "list-a", Limit = 2, Offset = 2 });
        Assert.Equal(ofA.Take(4).Select(r => r.Id), page1.Concat(page2).Select(r => r.Id));
        var failures = await Client.ListRunsAsync(new ListRunsParams { Status = RunStatus.Failed });
        Assert.Equal(failed.RunId, Assert.Single(failures).Id);
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "list-a", Status = RunStatus.Failed }));
        var before = await Client.ListRunsAsync(new ListRunsParams { Before = ofA[^1].CreatedAt });
        Assert.DoesNotContain(before, r => r.Id == ofA[^1].Id);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Client.ListRunsAsync(new ListRunsParams { Limit = 0 }));
    }

    [Fact]
    public async Task Running_runs_are_listed_and_counted_from_their_workflows_running_sets()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hold = Workflows.Define<Order, int>("hold-list", async ctx =>
        {
            started.TrySetResult();
            await release.Task.WaitAsync(ctx.CancellationToken);
            return 1;
        }, new WorkflowOptions { MaxConcurrency = 5 });
        await StartWorkerAsync(hold, Echo("other-list"));
        await (await Client.EmitWorkflowAsync(Echo("other-list"), new Order("done", 1))).ResultAsync(Generous);
        var handle = await Client.EmitWorkflowAsync(hold, new Order("x", 1));
        await started.Task.WaitAsync(Generous);

        Assert.Equal(handle.RunId, Assert.Single(await Client.ListRunsAsync(new ListRunsParams { Status = RunStatus.Running })).Id);
        Assert.Equal(handle.RunId, Assert.Single(await Client.ListRunsAsync(new ListRunsParams { Workflow = "hold-list", Status = RunStatus.Running })).Id);
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Status = RunStatus.Running, Offset = 1 }));
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Status = RunStatus.Running, Before = (await Client.GetRunAsync(handle.RunId))!.CreatedAt }));
        Assert.Equal(1, (await Client.GetWorkflowMetaAsync("hold-list"))!.RunCounts[RunStatus.Running]);
        Assert.Equal(1, (await Client.GetStatsAsync()).RunCounts[RunStatus.Running]);

        release.SetResult();
        await handle.ResultAsync(Generous);
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Status = RunStatus.Running }));
        Assert.Equal(0, (await Client.GetStatsAsync()).RunCounts[RunStatus.Running]);
    }

    [Fact]
    public async Task Workflow_meta_and_stats_show_options_workers_counts_and_counters()
    {
        var a = Echo("meta-a");
        await StartWorkerAsync(new StartWorkerOptions { App = "meta-app", Workflows = [a], Concurrency = 3 });
        await (await Client.EmitWorkflowAsync(a, new Order("x", 1))).ResultAsync(Generous);
        await Assert.ThrowsAsync<RunFailedException>(async () => await (await Client.EmitWorkflowAsync(a, new Order("x", -1))).ResultAsync(Generous));
        await Client.EmitWorkflowAsync(a, new Order("x", 2), new EmitOptions { Delay = TimeSpan.FromHours(1) });

        var meta = (await Client.GetWorkflowMetaAsync("meta-a"))!;
        Assert.Equal("default", meta.Queue);
        Assert.Equal(10, meta.MaxConcurrency);
        Assert.Equal(2, meta.MaxAttempts);
        Assert.Equal("meta-app", Assert.Single(meta.Workers).App);
        Assert.Equal(1, meta.RunCounts[RunStatus.Succeeded]);
        Assert.Equal(1, meta.RunCounts[RunStatus.Failed]);
        Assert.Equal(1, meta.RunCounts[RunStatus.Scheduled]);
        Assert.Null(await Client.GetWorkflowMetaAsync("nope"));
        Assert.Equal(["meta-a"], (await Client.ListWorkflowsAsync()).Select(w => w.Name));

        var stats = await Client.GetStatsAsync();
        var queue = Assert.Single(stats.Queues);
        Assert.Equal(("default", 0L, 1L, 0L), (queue.Name, queue.Ready, queue.Scheduled, queue.Running));
        Assert.Equal(1, stats.RunCounts[RunStatus.Succeeded]);
        var worker = Assert.Single(stats.Workers);
        Assert.Equal(("meta-app", 3), (worker.App, worker.Concurrency));
        Assert.Equal(["default"], worker.Queues);
        Assert.Equal(2, stats.Counters["started"]);
        Assert.Equal(1, stats.Counters["succeeded"]);
        Assert.Equal(1, stats.Counters["failed"]);
    }

    [Fact]
    public async Task Steps_are_listed_in_the_order_they_ran_with_times_and_attempts()
    {
        var wf = Workflows.Define<Order, int>("steps-order", async ctx =>
        {
            var x = await ctx.Step.RunAsync("zeta", ct => Task.FromResult(1));
            var y = await ctx.Step.RunAsync("alpha", ct => Task.FromResult(2));
            return x + y;
        }, new WorkflowOptions { MaxConcurrency = 10 });
        await StartWorkerAsync(wf);
        var handle = await Client.EmitWorkflowAsync(wf, new Order("x", 1));
        await handle.ResultAsync(Generous);
        var steps = await Client.GetRunStepsAsync(handle.RunId);
        Assert.Equal(["zeta", "alpha"], steps.Select(s => s.Name));
        Assert.All(steps, s =>
        {
            Assert.Equal(1, s.Attempt);
            Assert.True(s.StartedAt <= s.FinishedAt);
        });
        Assert.Equal(2, steps[1].Output!.Value.GetInt32());
        Assert.Empty(await Client.GetRunStepsAsync("run_missing"));
    }

    [Fact]
    public async Task Rerun_makes_a_new_run_with_the_same_input_pointing_at_the_original()
    {
        var wf = Echo("rerun-me");
        await StartWorkerAsync(wf);
        var original = await Client.EmitWorkflowAsync(wf, new Order("x", 7));
        await original.ResultAsync(Generous);
        var again = await Client.RerunAsync(original.RunId);
        Assert.NotEqual(original.RunId, again.RunId);
        Assert.Equal(7, await again.ResultAsync<int>(Generous));
        var run = await RunAsync(again.RunId);
        Assert.Equal(original.RunId, run.RerunOf);
        Assert.Equal(7, run.Input.GetProperty("amount").GetInt32());
        await Assert.ThrowsAsync<ArgumentException>(() => Client.RerunAsync("run_missing"));
    }

    [Fact]
    public async Task Finished_runs_leave_every_index_after_their_retention()
    {
        var wf = Echo("short-lived", retention: TimeSpan.FromMilliseconds(300));
        await StartWorkerAsync(wf);
        var handle = await Client.EmitWorkflowAsync(wf, new Order("x", 1), new EmitOptions { IdempotencyKey = "once" });
        await handle.ResultAsync(Generous);
        var keys = TestEnv.Store(Prefix).Keys;
        // The idempotency key outlives the run: it has its own window (24 h by default), counted from the run's end.
        Assert.True(await TestEnv.Db.KeyTimeToLiveAsync(keys.Idempotency("short-lived", "once")) > TimeSpan.FromHours(23));
        await EventuallyAsync(async () => await Client.GetRunAsync(handle.RunId) is null, "the run is purged");
        Assert.Empty(await Client.ListRunsAsync());
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "short-lived" }));
        foreach (var status in Enum.GetValues<RunStatus>())
            Assert.Null(await TestEnv.Db.SortedSetScoreAsync(keys.WorkflowStatus("short-lived", status), handle.RunId));
        Assert.False(await TestEnv.Db.KeyExistsAsync(keys.Steps(handle.RunId)));
        Assert.Null(await TestEnv.Db.SortedSetScoreAsync(keys.Finished, handle.RunId));
    }

    [Fact]
    public async Task Oversized_payloads_are_rejected_with_a_clear_error_and_nothing_half_written()
    {
        var big = new string('x', 600 * 1024);
        var wf = Workflows.Define<Order, string>("big-step", async ctx =>
            await ctx.Step.RunAsync("huge", ct => Task.FromResult(big)), new WorkflowOptions { MaxConcurrency = 10, MaxAttempts = 3 });
        await StartWorkerAsync(wf);
        var ex = await Assert.ThrowsAsync<InputValidationException>(() => Client.EmitWorkflowAsync("big-step", new { blob = big }));
        Assert.Contains("limit", ex.Message);
        Assert.Empty(await Client.ListRunsAsync());

        var handle = await Client.EmitWorkflowAsync(wf, new Order("x", 1));
        var failed = await Assert.ThrowsAsync<RunFailedException>(() => handle.ResultAsync(Generous));
        Assert.Contains("'huge'", failed.Error.Message);
        Assert.Contains("big-step", failed.Error.Message);
        Assert.Equal(1, (await RunAsync(handle.RunId)).Attempt); // not retried
        Assert.Equal(RunStatus.Failed, Assert.Single(await Client.GetRunStepsAsync(handle.RunId)).Status);
    }

    [Fact]
    public async Task A_step_result_that_does_not_serialize_fails_naming_the_workflow_the_step_and_the_type()
    {
        var wf = Workflows.Define<Order, int>("unserializable-step", async ctx =>
        {
            await ctx.Step.RunAsync<object>("bad", ct => Task.FromResult<object>(new { type = typeof(string) }));
            return 1;
        }, new WorkflowOptions { MaxConcurrency = 10, MaxAttempts = 3 });
        await StartWorkerAsync(wf);
        var handle = await Client.EmitWorkflowAsync(wf, new Order("x", 1));
        var failed = await Assert.ThrowsAsync<RunFailedException>(() => handle.ResultAsync(Generous));
        Assert.Contains("'bad'", failed.Error.Message);
        Assert.Contains("unserializable-step", failed.Error.Message);
        Assert.Contains("Object", failed.Error.Message);
        Assert.Equal(1, (await RunAsync(handle.RunId)).Attempt); // not retried
    }

    [Fact]
    public async Task Hostile_names_are_rejected_naming_what_is_wrong()
    {
        Assert.Contains("control character", Assert.Throws<ArgumentException>(() => Workflows.Define("bad\nname", async ctx => null)).Message);
        Assert.Contains("'{'", Assert.Throws<ArgumentException>(() => Workflows.Define("{evil}", async ctx => null)).Message);
        Assert.Contains("':'", Assert.Throws<ArgumentException>(() => Workflows.Define("ok", async ctx => null, new WorkflowOptions { Queue = "a:b" })).Message);
        Assert.Contains("256", Assert.Throws<ArgumentException>(() => Workflows.Define(new string('w', 300), async ctx => null)).Message);
        await StartWorkerAsync(Echo("names"));
        await Assert.ThrowsAsync<ArgumentException>(() => Client.EmitWorkflowAsync("names", null, new EmitOptions { IdempotencyKey = "x\u0000y" }));
        Assert.Throws<ArgumentException>(() => RedflowClient.Create("http://localhost:6379"));
        Assert.Throws<ArgumentException>(() => RedflowClient.Create("redis://localhost:6379/notadb"));
    }
}
