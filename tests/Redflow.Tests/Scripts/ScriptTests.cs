using Redflow.Protocol;
using Redflow.Tests.Integration;
using StackExchange.Redis;

namespace Redflow.Tests.Scripts;

/// <summary>
/// Each Lua script against the real Redis, called through the store, and each called twice with the same
/// arguments: a repeat (a timeout after send is ambiguous, so callers may repeat) writes nothing twice.
/// </summary>
public sealed class ScriptTests
{
    private readonly string _prefix = TestEnv.NewPrefix();
    private readonly RedisStore _store;
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    public ScriptTests() => _store = TestEnv.Store(_prefix);

    private Keys K => _store.Keys;
    private static IDatabase Db => TestEnv.Db;

    private Task RegisterAsync(string workflow = "wf", int maxConcurrency = 10, int maxAttempts = 3, bool onFailure = false) =>
        _store.RegisterAsync("app", "node-1", """{"app":"app","queues":["q"],"concurrency":1}""",
            [new WorkflowRegistration(workflow, "q", maxConcurrency, maxAttempts, TimeSpan.FromDays(7), onFailure, "[]")]);

    private async Task<string> EmitAsync(string id, string workflow = "wf", string? key = null, TimeSpan? delay = null) =>
        (await _store.EmitAsync(new NewRun(id, workflow, "{}") { Delay = delay, IdempotencyKey = key })).RunId;

    private async Task<ClaimedRun> ClaimOneAsync(string request = "r1", string worker = "node-1") =>
        Assert.Single(await _store.ClaimAsync("q", 1, worker, Lease, request, 3));

    private async Task<int> StatusIndexesContaining(string id)
    {
        var n = 0;
        foreach (var s in Enum.GetValues<RunStatus>())
            if (await Db.SortedSetScoreAsync(K.WorkflowStatus("wf", s), id) is not null) n++;
        if (await Db.SetContainsAsync(K.Running("wf"), id)) n++; // running runs are indexed by the running set
        return n;
    }

    [Fact]
    public async Task Emit_repeated_with_the_same_run_id_creates_one_run()
    {
        await RegisterAsync();
        Assert.Equal(("run_a", true), await _store.EmitAsync(new NewRun("run_a", "wf", "{}") { IdempotencyWindow = TimeSpan.FromHours(1) }));
        Assert.Equal(("run_a", false), await _store.EmitAsync(new NewRun("run_a", "wf", "{\"other\":1}") { IdempotencyWindow = TimeSpan.FromHours(1) }));
        Assert.Equal("{}", (string?)await Db.HashGetAsync(K.Run("run_a"), "input"));
        Assert.Equal(1, await Db.ListLengthAsync(K.Ready("q", "wf")));
        Assert.Equal(1, await StatusIndexesContaining("run_a"));
    }

    [Fact]
    public async Task G7_emit_with_the_same_idempotency_key_returns_the_first_run()
    {
        await RegisterAsync();
        Assert.Equal("run_a", await EmitAsync("run_a", key: "k"));
        Assert.Equal("run_a", await EmitAsync("run_b", key: "k"));
        Assert.False(await Db.KeyExistsAsync(K.Run("run_b")));
    }

    [Fact]
    public async Task G10_a_delay_is_measured_on_the_redis_clock()
    {
        await RegisterAsync();
        await EmitAsync("run_a", delay: TimeSpan.FromSeconds(10));
        var created = (long)await Db.HashGetAsync(K.Run("run_a"), "created_at");
        var available = (long)await Db.HashGetAsync(K.Run("run_a"), "available_at");
        Assert.Equal(10_000, available - created);
        Assert.Equal(available, (long)(await Db.SortedSetScoreAsync(K.Scheduled("q"), "run_a"))!.Value);
        Assert.Empty(await _store.ClaimAsync("q", 5, "node-1", Lease, "r", 3)); // not due
    }

    [Fact]
    public async Task Claim_repeated_with_the_same_request_id_returns_the_same_lease()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        await EmitAsync("run_b");
        var first = await _store.ClaimAsync("q", 1, "node-1", Lease, "req", 3);
        var again = await _store.ClaimAsync("q", 1, "node-1", Lease, "req", 3);
        Assert.Equal(first.Select(r => (r.Id, r.Token)), again.Select(r => (r.Id, r.Token)));
        Assert.Equal(1, await Db.ListLengthAsync(K.Ready("q", "wf"))); // the second run is still queued
    }

    [Fact]
    public async Task One_claim_serves_a_workers_queues_in_their_order_and_its_repeat_answers_the_same()
    {
        foreach (var (wf, q) in new[] { ("wf_a", "qa"), ("wf_b", "qb"), ("wf_c", "qc") })
            await _store.RegisterAsync("app", "node-1", """{"app":"app","queues":["qa","qb","qc"],"concurrency":1}""",
                [new WorkflowRegistration(wf, q, 10, 3, TimeSpan.FromDays(7), false, "[]")]);
        await EmitAsync("run_c1", "wf_c");
        await EmitAsync("run_b1", "wf_b");
        await EmitAsync("run_b2", "wf_b");
        await EmitAsync("run_a1", "wf_a");
        var claimed = await _store.ClaimAsync(["qa", "qb", "qc"], 3, "node-1", Lease, "r1", 3);
        Assert.Equal([("run_a1", "qa"), ("run_b1", "qb"), ("run_b2", "qb")], claimed.Select(r => (r.Id, r.Queue)));
        var again = await _store.ClaimAsync(["qa", "qb", "qc"], 3, "node-1", Lease, "r1", 3);
        Assert.Equal(claimed.Select(r => (r.Id, r.Token)), again.Select(r => (r.Id, r.Token)));
        Assert.Equal("run_c1", Assert.Single(await _store.ClaimAsync(["qa", "qb", "qc"], 3, "node-1", Lease, "r2", 3)).Id);
    }

    [Fact]
    public async Task G5_claim_respects_max_concurrency_and_does_not_block_other_workflows()
    {
        await RegisterAsync("capped", maxConcurrency: 1);
        await RegisterAsync("free", maxConcurrency: 10);
        await EmitAsync("run_c1", "capped");
        await EmitAsync("run_c2", "capped");
        await EmitAsync("run_f1", "free");
        var claimed = await _store.ClaimAsync("q", 10, "node-1", Lease, "r1", 3);
        Assert.Equal(["run_c1", "run_f1"], claimed.Select(c => c.Id).Order());
        Assert.Empty(await _store.ClaimAsync("q", 10, "node-2", Lease, "r2", 3)); // capped: run_c2 waits
        await _store.CompleteAsync("run_c1", claimed.Single(c => c.Id == "run_c1").Token, "1");
        Assert.Equal("run_c2", Assert.Single(await _store.ClaimAsync("q", 10, "node-2", Lease, "r3", 3)).Id);
    }

    [Fact]
    public async Task A_capped_workflow_in_the_ring_does_not_cut_a_batched_claim_short()
    {
        await RegisterAsync("capped", maxConcurrency: 1);
        await RegisterAsync("one", maxConcurrency: 10);
        await RegisterAsync("many", maxConcurrency: 10);
        await EmitAsync("run_c1", "capped");
        await EmitAsync("run_c2", "capped");
        await EmitAsync("run_o1", "one");
        for (var i = 0; i < 5; i++) await EmitAsync($"run_m{i}", "many");
        Assert.Single(await _store.ClaimAsync("q", 1, "node-1", Lease, "first", 3)); // run_c1: "capped" is now at its cap
        var batch = await _store.ClaimAsync("q", 4, "node-1", Lease, "second", 3);
        Assert.Equal(4, batch.Count);
        Assert.DoesNotContain(batch, r => r.Workflow == "capped");
    }

    [Fact]
    public async Task Renew_extends_a_held_lease_and_reports_a_lost_one()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        var run = await ClaimOneAsync();
        var (deadline, codes) = await _store.RenewAsync(Lease, "node-1", [(run.Id, run.Token, "charge"), (run.Id, "999999", null)]);
        Assert.Equal([1, 0], codes);
        Assert.Equal("charge", (string?)await Db.HashGetAsync(K.Run(run.Id), "current_step")); // the step it is in, for inspection
        var (again, codes2) = await _store.RenewAsync(Lease, "node-1", [(run.Id, run.Token, null)]);
        Assert.Equal([1], codes2);
        Assert.Equal("", (string?)await Db.HashGetAsync(K.Run(run.Id), "current_step")); // between steps
        Assert.True(again >= deadline);
        Assert.Equal(again, (long)(await Db.SortedSetScoreAsync(K.Leases("q"), run.Id))!.Value);
    }

    [Fact]
    public async Task G2_record_step_repeated_keeps_the_first_record()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        var run = await ClaimOneAsync();
        Assert.Equal((WriteOutcome.Ok, "1"), await _store.RecordStepAsync(run.Id, run.Token, "s", 1, "1", TimeSpan.FromMilliseconds(5)));
        Assert.Equal((WriteOutcome.AlreadyDone, "1"), await _store.RecordStepAsync(run.Id, run.Token, "s", 1, "2", TimeSpan.FromMilliseconds(5)));
        Assert.Equal("1", Assert.Single(await _store.GetStepsAsync(run.Id)).Output!.Value.GetRawText());
    }

    [Fact]
    public async Task G3_a_stale_token_records_nothing_after_a_takeover()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        var stale = await ClaimOneAsync();
        await Db.SortedSetAddAsync(K.Leases("q"), stale.Id, 0); // its lease expired
        var fresh = await ClaimOneAsync("r2");                   // the claim takes it back and leases it anew
        Assert.NotEqual(stale.Token, fresh.Token);
        Assert.Equal(WriteOutcome.Fenced, (await _store.RecordStepAsync(stale.Id, stale.Token, "s", 1, "\"stale\"", TimeSpan.Zero)).Outcome);
        Assert.Equal(WriteOutcome.Fenced, (await _store.CompleteAsync(stale.Id, stale.Token, "\"stale\"")).Outcome);
        Assert.Equal(WriteOutcome.Fenced, (await _store.FailAsync(new AttemptFailure(stale.Id, stale.Token, new RunError("X", "x"), 1) { Lease = Lease })).Outcome);
        Assert.Equal(WriteOutcome.Fenced, await _store.HandBackAsync(stale.Id, stale.Token, TimeSpan.Zero));
        Assert.Empty(await _store.GetStepsAsync(stale.Id));
        Assert.Equal(WriteOutcome.Ok, (await _store.CompleteAsync(fresh.Id, fresh.Token, "\"fresh\"")).Outcome);
        Assert.Equal("\"fresh\"", (string?)await Db.HashGetAsync(K.Run("run_a"), "output"));
    }

    [Fact]
    public async Task Tokens_are_floored_at_the_redis_clock_when_the_counter_rolled_back_and_keep_increasing()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        await EmitAsync("run_b");
        await Db.StringSetAsync(K.Token, "5"); // a lossy failover rolled the counter back
        var first = await ClaimOneAsync("r1");
        var time = (RedisResult[])(await Db.ExecuteAsync("TIME"))!;
        var nowUs = long.Parse((string)time[0]!) * 1_000_000 + long.Parse((string)time[1]!);
        Assert.InRange(long.Parse(first.Token), nowUs - 5_000_000, nowUs + 1); // at the clock, not 6
        var second = await ClaimOneAsync("r2");
        Assert.True(long.Parse(second.Token) > long.Parse(first.Token));
    }

    [Fact]
    public async Task Complete_repeated_is_already_done_and_the_run_is_in_one_status_index()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        var run = await ClaimOneAsync();
        Assert.Equal(WriteOutcome.Ok, (await _store.CompleteAsync(run.Id, run.Token, "42")).Outcome);
        Assert.Equal(WriteOutcome.AlreadyDone, (await _store.CompleteAsync(run.Id, run.Token, "43")).Outcome);
        Assert.Equal("42", (string?)await Db.HashGetAsync(K.Run("run_a"), "output"));
        Assert.Equal(1, await StatusIndexesContaining("run_a"));
        Assert.NotNull(await Db.SortedSetScoreAsync(K.WorkflowStatus("wf", RunStatus.Succeeded), "run_a"));
        Assert.Equal(0, await Db.SetLengthAsync(K.Running("wf")));
    }

    [Fact]
    public async Task Complete_with_a_next_request_claims_the_next_run_once()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        await EmitAsync("run_b");
        var run = await ClaimOneAsync();
        var next = new NextRunRequest(Lease, "node-1", ["q"]);
        var (outcome, runs) = await _store.CompleteAsync(run.Id, run.Token, "1", next);
        Assert.Equal(WriteOutcome.Ok, outcome);
        var b = Assert.Single(runs);
        var (repeat, runsAgain) = await _store.CompleteAsync(run.Id, run.Token, "1", next);
        Assert.Equal(WriteOutcome.AlreadyDone, repeat);
        Assert.Equal((b.Id, b.Token), (Assert.Single(runsAgain).Id, runsAgain[0].Token));
    }

    [Fact]
    public async Task G8_fail_retries_with_a_delay_then_fails_for_good_and_repeats_are_already_done()
    {
        await RegisterAsync(maxAttempts: 2, onFailure: true);
        await EmitAsync("run_a");
        var first = await ClaimOneAsync();
        var retry = await _store.FailAsync(new AttemptFailure(first.Id, first.Token, new RunError("X", "one"), 1) { Delay = TimeSpan.FromMilliseconds(50), FailedStep = "s", Lease = Lease });
        Assert.Equal(new FailResult(WriteOutcome.Ok, true, 2), retry);
        Assert.Equal(WriteOutcome.AlreadyDone, (await _store.FailAsync(new AttemptFailure(first.Id, first.Token, new RunError("X", "one"), 1) { Delay = TimeSpan.FromMilliseconds(50), FailedStep = "s", Lease = Lease })).Outcome);
        Assert.Equal("scheduled", (string?)await Db.HashGetAsync(K.Run("run_a"), "status"));
        Assert.Equal(2, (int)await Db.HashGetAsync(K.Run("run_a"), "attempt"));

        ClaimedRun? second = null;
        var until = DateTime.UtcNow.AddSeconds(10);
        while (second is null && DateTime.UtcNow < until)
            second = (await _store.ClaimAsync("q", 1, "node-1", Lease, Guid.NewGuid().ToString(), 3)).SingleOrDefault();
        Assert.NotNull(second);
        var final = await _store.FailAsync(new AttemptFailure(second.Id, second.Token, new RunError("X", "two"), 2) { Lease = Lease });
        Assert.Equal(new FailResult(WriteOutcome.Ok, false, 2), final);
        Assert.Equal(WriteOutcome.AlreadyDone, (await _store.FailAsync(new AttemptFailure(second.Id, second.Token, new RunError("X", "two"), 2) { Lease = Lease })).Outcome);
        Assert.Equal("failed", (string?)await Db.HashGetAsync(K.Run("run_a"), "status"));
        Assert.NotNull(await Db.SortedSetScoreAsync(K.OnFailure, "run_a")); // the pending OnFailure call, recorded with the failure
        var step = Assert.Single(await _store.GetStepsAsync("run_a"));
        Assert.Equal(RunStatus.Failed, step.Status);
    }

    [Fact]
    public async Task A_succeeded_step_record_is_never_overwritten_by_a_failure()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        var run = await ClaimOneAsync();
        await _store.RecordStepAsync(run.Id, run.Token, "s", 1, "\"ok\"", TimeSpan.Zero);
        await _store.FailAsync(new AttemptFailure(run.Id, run.Token, new RunError("X", "later"), 1) { FailedStep = "s", Lease = Lease });
        Assert.Equal(RunStatus.Succeeded, Assert.Single(await _store.GetStepsAsync("run_a")).Status);
    }

    [Fact]
    public async Task Handback_requeues_without_a_new_attempt_and_a_repeat_is_already_done()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        var run = await ClaimOneAsync();
        Assert.Equal(WriteOutcome.Ok, await _store.HandBackAsync(run.Id, run.Token, TimeSpan.Zero));
        Assert.Equal(WriteOutcome.AlreadyDone, await _store.HandBackAsync(run.Id, run.Token, TimeSpan.Zero));
        var record = (await _store.GetRunAsync("run_a"))!;
        Assert.Equal((RunStatus.Queued, 1, 1), (record.Status, record.Attempt, record.Resumes));
        Assert.Equal(1, await Db.ListLengthAsync(K.Ready("q", "wf")));
    }

    [Fact]
    public async Task G4_reap_takes_back_expired_leases_once_and_abandons_a_run_whose_workers_die_with_it()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        for (var expiry = 1; expiry <= 3; expiry++)
        {
            // Each holder dies with the run: it is never seen in Redis again after its lease ran out.
            var run = await ClaimOneAsync($"r{expiry}", worker: $"dead-{expiry}");
            await Db.SortedSetAddAsync(K.Leases("q"), run.Id, 0);
            var reaped = await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30));
            Assert.Equal(1, reaped.Reclaimed);
            Assert.Equal(0, (await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30))).Reclaimed); // a repeat finds nothing
        }
        var record = (await _store.GetRunAsync("run_a"))!;
        Assert.Equal(RunStatus.Failed, record.Status);
        Assert.Contains("abandoned", record.Error!.Message);
        Assert.Equal(1, await StatusIndexesContaining("run_a"));
    }

    [Fact]
    public async Task G4_a_lease_that_lapsed_while_its_worker_lived_on_is_not_a_stall()
    {
        await RegisterAsync();
        await EmitAsync("run_a");
        for (var expiry = 1; expiry <= 6; expiry++)
        {
            // Redis paused past the lease: the lease runs out, but its worker is seen again afterwards.
            var run = await ClaimOneAsync($"r{expiry}", worker: "alive");
            await Db.SortedSetAddAsync(K.Leases("q"), run.Id, 0);
            var leaseUntil = (long)await Db.HashGetAsync(K.Run(run.Id), "lease_until");
            await Db.SortedSetAddAsync(K.WorkersSeen, "alive", leaseUntil + 1);
            Assert.Equal(1, (await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30))).Reclaimed);
        }
        var record = (await _store.GetRunAsync("run_a"))!;
        Assert.Equal((RunStatus.Queued, 6), (record.Status, record.Resumes));
        Assert.Equal(5, (long)await Db.HashGetAsync(K.Counters, "lease_lapses")); // the sixth is judged at the next expiry

        // Two deaths in a row after that, and the third expiry fails it; a recorded step in between starts the count over.
        var a = await ClaimOneAsync("d1", worker: "dead-1");
        await Db.SortedSetAddAsync(K.Leases("q"), a.Id, 0);
        await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30));
        var b = await ClaimOneAsync("d2", worker: "dead-2");
        Assert.Equal(WriteOutcome.Ok, (await _store.RecordStepAsync(b.Id, b.Token, "s1", 1, "1", TimeSpan.Zero)).Outcome);
        await Db.SortedSetAddAsync(K.Leases("q"), b.Id, 0);
        await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30));
        Assert.Equal(RunStatus.Queued, (await _store.GetRunAsync("run_a"))!.Status); // progress: dead-1 no longer counts
        for (var i = 3; i <= 4; i++)
        {
            var c = await ClaimOneAsync($"d{i}", worker: $"dead-{i}");
            await Db.SortedSetAddAsync(K.Leases("q"), c.Id, 0);
            await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30));
        }
        Assert.Equal(RunStatus.Failed, (await _store.GetRunAsync("run_a"))!.Status); // dead-2, dead-3 confirmed, dead-4 presumed
    }

    [Fact]
    public async Task Reap_promotes_due_runs_and_purges_finished_runs_past_retention()
    {
        await _store.RegisterAsync("app", "node-1", "{}", [new WorkflowRegistration("wf", "q", 10, 3, TimeSpan.FromMilliseconds(1), false, "[]")]);
        await EmitAsync("run_a");
        var run = await ClaimOneAsync();
        await _store.CompleteAsync(run.Id, run.Token, "1");
        await Db.SortedSetAddAsync(K.Finished, "run_a", 0); // retention passed
        Assert.Equal(1, (await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30))).Purged);
        Assert.Equal(0, (await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30))).Purged);
        Assert.False(await Db.KeyExistsAsync(K.Run("run_a")));
        Assert.Equal(0, await StatusIndexesContaining("run_a"));
        Assert.Null(await Db.SortedSetScoreAsync(K.WorkflowRuns("wf"), "run_a"));
    }

    [Fact]
    public async Task G9_cancel_of_queued_and_running_runs_and_its_repeats()
    {
        await RegisterAsync();
        await EmitAsync("run_q");
        Assert.True(await _store.CancelAsync("run_q", "why"));
        Assert.False(await _store.CancelAsync("run_q", "why")); // finished now
        Assert.Equal(0, await Db.ListLengthAsync(K.Ready("q", "wf")));
        Assert.Equal(0, await Db.ListLengthAsync(K.Ring("q")));

        await EmitAsync("run_r");
        var run = await ClaimOneAsync();
        Assert.True(await _store.CancelAsync("run_r", "stop"));
        Assert.True(await _store.CancelAsync("run_r", "stop")); // still under way
        var codes = (await _store.RenewAsync(Lease, "node-1", [(run.Id, run.Token, null)])).Codes;
        Assert.Equal(new[] { 2 }, codes);
        Assert.True(await _store.CancelAsync("run_r", null, run.Token)); // the holder acknowledges
        Assert.False(await _store.CancelAsync("run_r", null, run.Token));
        var record = (await _store.GetRunAsync("run_r"))!;
        Assert.Equal((RunStatus.Canceled, "stop"), (record.Status, record.CancelReason));
        Assert.False(await _store.CancelAsync("run_unknown", null));
    }

    [Fact]
    public async Task A_child_wait_suspends_the_parent_once_and_the_childs_end_requeues_it()
    {
        await RegisterAsync();
        await EmitAsync("run_parent");
        var parent = await ClaimOneAsync();
        await _store.EmitAsync(new NewRun("run_child", "wf", "{}") { Delay = TimeSpan.FromHours(1), IdempotencyWindow = TimeSpan.FromHours(1), ParentRunId = parent.Id });
        var wait = new WaitRequest("c", WaitKind.Child, "run_child");
        var answer = await _store.WaitAsync(parent.Id, parent.Token, 1, wait);
        Assert.Equal(WaitState.Pending, answer.State);
        Assert.Equal(SuspendOutcome.Waiting, await _store.SuspendAsync(parent.Id, parent.Token, [new PendingWait(wait, answer.DeadlineMs)]));
        Assert.Equal(SuspendOutcome.Fenced, await _store.SuspendAsync(parent.Id, parent.Token, [new PendingWait(wait, answer.DeadlineMs)])); // nothing written twice
        Assert.Equal("waiting", (string?)await Db.HashGetAsync(K.Run("run_parent"), "status"));
        Assert.Equal(0, await Db.SetLengthAsync(K.Running("wf"))); // the waiting parent holds no slot
        Assert.Equal(WaitKind.Child, Assert.Single((await _store.GetRunAsync("run_parent"))!.Waits).Kind);
        Assert.True(await _store.CancelAsync("run_child", "x"));     // the child ends: the parent is requeued
        Assert.Equal("queued", (string?)await Db.HashGetAsync(K.Run("run_parent"), "status"));
        Assert.False(await Db.KeyExistsAsync(K.RunWaits("run_parent")));
    }

    [Fact]
    public async Task A_signal_is_buffered_taken_once_in_order_and_a_suspension_that_raced_it_is_not_written()
    {
        await RegisterAsync();
        await EmitAsync("run_s");
        var run = await ClaimOneAsync();
        Assert.True(await _store.SignalAsync("run_s", "go", "1"));
        Assert.True(await _store.SignalAsync("run_s", "go", "2"));
        var first = await _store.WaitAsync(run.Id, run.Token, 1, new WaitRequest("a", WaitKind.Signal, "go"));
        Assert.Equal((WaitState.Satisfied, "1"), (first.State, first.Payload));
        var again = await _store.WaitAsync(run.Id, run.Token, 1, new WaitRequest("a", WaitKind.Signal, "go")); // a repeat answers from the record
        Assert.Equal("1", again.Payload);
        var b = new WaitRequest("b", WaitKind.Signal, "go");
        // A suspension on a wait whose signal is there already writes nothing: the worker takes the signal instead.
        Assert.Equal(SuspendOutcome.Ready, await _store.SuspendAsync(run.Id, run.Token, [new PendingWait(b, null)]));
        Assert.Equal("2", (await _store.WaitAsync(run.Id, run.Token, 1, b)).Payload);
        var c = new WaitRequest("c", WaitKind.Signal, "go");
        Assert.Equal(WaitState.Pending, (await _store.WaitAsync(run.Id, run.Token, 1, c)).State);
        Assert.Equal(SuspendOutcome.Waiting, await _store.SuspendAsync(run.Id, run.Token, [new PendingWait(c, null)]));
        Assert.True(await _store.SignalAsync("run_s", "go", "3")); // the waiting run is requeued
        Assert.Equal("queued", (string?)await Db.HashGetAsync(K.Run("run_s"), "status"));
        Assert.False(await _store.SignalAsync("run_unknown", "go", "1"));
    }

    [Fact]
    public async Task An_event_is_taken_by_every_waiting_run_once_and_found_by_a_later_wait()
    {
        await RegisterAsync();
        await EmitAsync("run_e1");
        await EmitAsync("run_e2");
        var runs = await _store.ClaimAsync("q", 2, "node-1", Lease, "req-e", 3);
        Assert.Equal(2, runs.Count);
        var sent = await _store.SendEventAsync(new NewEvent("evt_1", "paid", "{\"n\":1}") { Key = "o1" }); // before either waits
        Assert.Equal((0, 0), (sent.RunsResumed, sent.RunsStarted));
        foreach (var run in runs)
        {
            var w = await _store.WaitAsync(run.Id, run.Token, 1, new WaitRequest("p", WaitKind.Event, "paid") { Key = "o1" });
            Assert.Equal((WaitState.Satisfied, "{\"n\":1}"), (w.State, w.Payload));
            var other = new WaitRequest("q", WaitKind.Event, "paid") { Key = "o1" }; // the same event is not taken twice by one run
            Assert.Equal(WaitState.Pending, (await _store.WaitAsync(run.Id, run.Token, 1, other)).State);
            Assert.Equal(WaitState.Pending, (await _store.WaitAsync(run.Id, run.Token, 1, new WaitRequest("k", WaitKind.Event, "paid"))).State); // no key: another stream
            Assert.Equal(SuspendOutcome.Waiting, await _store.SuspendAsync(run.Id, run.Token, [new PendingWait(other, null)]));
        }
        Assert.Equal(2, await Db.SetLengthAsync(K.EventWaiters("paid", "o1")));
        var second = await _store.SendEventAsync(new NewEvent("evt_2", "paid", "2") { Key = "o1", IdempotencyKey = "psp-2" });
        Assert.Equal(2, second.RunsResumed);
        var repeat = await _store.SendEventAsync(new NewEvent("evt_3", "paid", "2") { Key = "o1", IdempotencyKey = "psp-2" });
        Assert.Equal(new EventSent("evt_2", 0, 0), repeat);
        Assert.Equal(0, await Db.SetLengthAsync(K.EventWaiters("paid", "o1")));
    }

    [Fact]
    public async Task An_event_trigger_starts_one_run_per_event_and_workflow()
    {
        await _store.RegisterAsync("app", "node-1", """{"app":"app","queues":["q"],"concurrency":1}""",
            [new WorkflowRegistration("on-order", "q", 10, 3, TimeSpan.FromDays(7), false, "[]", "order.created")]);
        var first = await _store.SendEventAsync(new NewEvent("evt_a", "order.created", "{\"id\":1}"));
        var second = await _store.SendEventAsync(new NewEvent("evt_b", "order.created", "{\"id\":2}") { IdempotencyKey = "k" });
        var repeat = await _store.SendEventAsync(new NewEvent("evt_c", "order.created", "{\"id\":2}") { IdempotencyKey = "k" });
        Assert.Equal((1, 1, 0), (first.RunsStarted, second.RunsStarted, repeat.RunsStarted));
        Assert.Equal(2, await Db.SortedSetLengthAsync(K.WorkflowRuns("on-order")));
        // A worker that no longer has the trigger takes it away.
        await _store.RegisterAsync("app", "node-1", """{"app":"app","queues":["q"],"concurrency":1}""",
            [new WorkflowRegistration("on-order", "q", 10, 3, TimeSpan.FromDays(7), false, "[]")]);
        Assert.Equal(0, (await _store.SendEventAsync(new NewEvent("evt_d", "order.created", "{}"))).RunsStarted);
    }

    [Fact]
    public async Task A_wait_past_its_deadline_records_the_timeout_and_a_repeat_answers_it_again()
    {
        await RegisterAsync();
        await EmitAsync("run_t");
        var run = await ClaimOneAsync();
        var w = new WaitRequest("t", WaitKind.Signal, "never") { Relative = TimeSpan.FromMilliseconds(50) };
        var pending = await _store.WaitAsync(run.Id, run.Token, 1, w);
        Assert.Equal(WaitState.Pending, pending.State);
        Assert.NotNull(pending.DeadlineMs);
        await Task.Delay(200);
        Assert.Equal(WaitState.TimedOut, (await _store.WaitAsync(run.Id, run.Token, 1, w)).State);
        var repeat = await _store.WaitAsync(run.Id, run.Token, 1, w);
        Assert.True(repeat.Recorded is { TimedOut: true });
        var sleep = new WaitRequest("s", WaitKind.Sleep, null) { Relative = TimeSpan.FromMilliseconds(50) };
        Assert.Equal(WaitState.Pending, (await _store.WaitAsync(run.Id, run.Token, 1, sleep)).State);
        await Task.Delay(200);
        Assert.Equal((WaitState.Satisfied, "null"), ((await _store.WaitAsync(run.Id, run.Token, 1, sleep)).State, (await _store.WaitAsync(run.Id, run.Token, 1, sleep)).Payload));
    }

    [Fact]
    public async Task A_claim_wakes_a_due_sleep_itself_when_no_reaper_runs()
    {
        await RegisterAsync();
        await EmitAsync("run_c");
        var run = await ClaimOneAsync();
        var sleep = new WaitRequest("s", WaitKind.Sleep, null) { Relative = TimeSpan.FromMilliseconds(100) };
        var pending = await _store.WaitAsync(run.Id, run.Token, 1, sleep);
        Assert.Equal(SuspendOutcome.Waiting, await _store.SuspendAsync(run.Id, run.Token, [new PendingWait(sleep, pending.DeadlineMs)]));
        Assert.Empty(await _store.ClaimAsync("q", 1, "node-1", Lease, "c1", 3)); // not due yet
        await Task.Delay(250);
        var woken = Assert.Single(await _store.ClaimAsync("q", 1, "node-1", Lease, "c2", 3));
        Assert.Equal((run.Id, true), (woken.Id, woken.Woken));
    }

    [Fact]
    public async Task A_due_sleep_requeues_its_run_at_the_reap()
    {
        await RegisterAsync();
        await EmitAsync("run_z");
        var run = await ClaimOneAsync();
        var sleep = new WaitRequest("s", WaitKind.Sleep, null) { Relative = TimeSpan.FromMilliseconds(100) };
        var pending = await _store.WaitAsync(run.Id, run.Token, 1, sleep);
        Assert.Equal(SuspendOutcome.Waiting, await _store.SuspendAsync(run.Id, run.Token, [new PendingWait(sleep, pending.DeadlineMs)]));
        Assert.Equal(0, (await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30))).Woken);
        await Task.Delay(250);
        Assert.Equal(1, (await _store.ReapAsync(100, 3, TimeSpan.FromSeconds(30))).Woken);
        var again = await ClaimOneAsync("r2");
        Assert.True(again.Woken);
        Assert.Equal("null", (await _store.WaitAsync(again.Id, again.Token, 1, sleep)).Payload);
    }

    [Fact]
    public async Task The_lua_key_layout_matches_the_key_builder()
    {
        var keys = (RedisResult[])(await Db.ScriptEvaluateAsync(ScriptLibrary.Library +
            "\nreturn {k_run('x'), k_steps('x'), k_children('x'), k_ready('q','w'), k_ring('q'), k_scheduled('q'), k_leases('q'), k_running('w'), k_wf('w'), k_wf_workers('w'), k_wf_status('w','queued'), k_wf_runs('w'), k_idem('w','k'), k_cron('t'), k_cron_paused('t'), K_FINISHED, K_ONFAILURE, K_WORKFLOWS, K_QUEUES, K_WORKERS, K_WORKERS_SEEN, K_COUNTERS, K_CANCELS, K_WAITS, K_TOKEN, " +
            "k_attempts('x'), k_waits('x'), k_signals('x'), k_events('évent','k'), k_event('e'), k_event_waiters('évent','k'), k_event_idem('évent','i'), k_event_triggers('n'), K_EVENT_PURGE, K_EVENT_CLOCK, " +
            "k_ready_at('q','0','w'), k_ready_at('q','-5','w'), k_ring_at('q','7'), k_levels('q'), k_kready('q','3','wé','k:1'), k_krunning('wé','k'), k_kparked('wé','k'), k_wf_parked('w'), k_rate('wé','k'), k_ratewait('q'), k_debounce('wé','k'), k_folded('x')}",
            [(RedisKey)K.Base]))!;
        RedisKey[] expected =
        [
            K.Run("x"), K.Steps("x"), K.Children("x"), K.Ready("q", "w"), K.Ring("q"), K.Scheduled("q"), K.Leases("q"), K.Running("w"),
            K.Workflow("w"), K.WorkflowWorkers("w"), K.WorkflowStatus("w", RunStatus.Queued), K.WorkflowRuns("w"),
            K.Idempotency("w", "k"), K.CronLast("t"), K.CronPaused("t"), K.Finished, K.OnFailure, K.WorkflowsSet, K.Queues, K.Workers, K.WorkersSeen, K.Counters, K.Cancels, K.Waits, K.Token,
            K.Attempts("x"), K.RunWaits("x"), K.Signals("x"), K.Events("évent", "k"), K.Event("e"), K.EventWaiters("évent", "k"), K.EventIdempotency("évent", "i"),
            K.EventTriggers("n"), K.EventPurge, K.EventClock,
            K.ReadyAt("q", 0, "w"), K.ReadyAt("q", -5, "w"), K.RingAt("q", 7), K.Levels("q"), K.KeyReady("q", 3, "wé", "k:1"), K.KeyRunning("wé", "k"),
            K.KeyParked("wé", "k"), K.WorkflowParked("w"), K.Rate("wé", "k"), K.RateWait("q"), K.Debounce("wé", "k"), K.Folded("x"),
        ];
        Assert.Equal(expected.Select(k => (string)k!), keys.Select(k => (string)k!));
    }

    [Fact]
    public void Each_script_header_names_the_library_parts_its_code_uses()
    {
        Assert.NotEmpty(ScriptLibrary.Names);
        foreach (var name in ScriptLibrary.Names)
        {
            var source = ScriptLibrary.Source(name);
            var header = source[..(source.IndexOf("]]", StringComparison.Ordinal) + 2)];
            var line = header.Split('\n').SingleOrDefault(l => l.TrimStart().StartsWith("Uses:", StringComparison.Ordinal));
            Assert.True(line is not null, $"{name}.lua has no Uses: line in its header");
            var listed = line!.Trim()["Uses:".Length..].Replace("(_lib.lua)", "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            Assert.True(ScriptLibrary.DirectUses(source).SequenceEqual(listed),
                $"{name}.lua: its header lists [{string.Join(", ", listed)}], its code uses [{string.Join(", ", ScriptLibrary.DirectUses(source))}]");
            Assert.Contains("KEYS[1]", header);
            Assert.Contains("Returns", header);
        }
    }
}
