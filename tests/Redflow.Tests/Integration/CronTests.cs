using System.Collections.Concurrent;
using Redflow.Protocol;
using Redflow.Runtime;

namespace Redflow.Tests.Integration;

/// <summary>Cron triggers (G6): once per tick with several cron actors, skipped at the cap, misfire policies, DST.</summary>
public sealed class CronTests : WorkerTest
{
    [Fact]
    public async Task G6_two_cron_actors_fire_one_run_per_tick()
    {
        var ticks = Workflows.Define("every-second", async ctx => new { ok = true },
            new WorkflowOptions { MaxConcurrency = 10, Cron = [new CronTrigger("* * * * * *") { Id = "tick", Input = new { source = "cron" } }] });
        // Two standalone workers: two cron actors on one Redis.
        await StartWorkerAsync(ticks);
        await StartWorkerAsync(ticks);
        IReadOnlyList<RunRecord> runs = [];
        await EventuallyAsync(async () => (runs = await Client.ListRunsAsync(new ListRunsParams { Workflow = "every-second" })).Count >= 3,
            "three ticks fired");
        Assert.All(runs, r => Assert.StartsWith("cron:tick:", r.IdempotencyKey));
        Assert.Equal(runs.Count, runs.Select(r => r.IdempotencyKey).Distinct().Count());
        Assert.All(runs, r => Assert.Equal("cron", r.Input.GetProperty("source").GetString()));
        var instants = runs.Select(r => long.Parse(r.IdempotencyKey!.Split(':')[^1])).Order().ToList();
        Assert.All(instants.Zip(instants.Skip(1)), p => Assert.True(p.Second - p.First >= 1000, "one run per instant"));
        Assert.True((await Client.GetStatsAsync()).Counters["cron_fired"] >= 3);
    }

    [Fact]
    public async Task G6_a_tick_is_skipped_while_the_workflow_is_at_max_concurrency()
    {
        var release = new TaskCompletionSource();
        var started = 0;
        var busy = Workflows.Define("busy-cron", async ctx =>
        {
            Interlocked.Increment(ref started);
            await release.Task.WaitAsync(ctx.CancellationToken);
            return null;
        }, new WorkflowOptions { MaxConcurrency = 1, Cron = [new CronTrigger("* * * * * *") { Id = "busy" }] });
        await StartWorkerAsync(busy);
        await EventuallyAsync(async () => (await Client.GetStatsAsync()).Counters.GetValueOrDefault("cron_skipped") >= 2, "ticks were skipped");
        Assert.Equal(1, Volatile.Read(ref started));
        Assert.Single(await Client.ListRunsAsync(new ListRunsParams { Workflow = "busy-cron" }));
        release.SetResult();
    }

    [Fact]
    public async Task Next_fire_times_are_visible_in_the_workflow_meta()
    {
        var daily = Workflows.Define("daily-digest", async ctx => null,
            new WorkflowOptions { Cron = [new CronTrigger("0 9 * * *") { Timezone = "Europe/Berlin", Id = "digest" }] });
        await StartWorkerAsync(daily);
        var meta = await Client.GetWorkflowMetaAsync("daily-digest");
        var trigger = Assert.Single(meta!.Cron);
        Assert.Equal("digest", trigger.Id);
        Assert.Equal("Europe/Berlin", trigger.Timezone);
        Assert.NotNull(trigger.NextFireAt);
        var local = TimeZoneInfo.ConvertTime(trigger.NextFireAt!.Value, TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin"));
        Assert.Equal(9, local.Hour);
        Assert.True(trigger.NextFireAt > DateTimeOffset.UtcNow);
    }

    [Fact]
    public async Task A_paused_trigger_fires_nothing_and_resumed_it_does_not_fire_the_instants_it_missed()
    {
        var keys = new Keys(Prefix);
        // RunAll would replay every missed instant: a resume must not count the paused ones as missed.
        var ticks = Workflows.Define("pausable", async ctx => null, new WorkflowOptions
        {
            MaxConcurrency = 100, Cron = [new CronTrigger("* * * * * *") { Id = "pausable-tick", Misfire = MisfirePolicy.RunAll }],
        });
        var worker = await StartWorkerAsync(ticks);
        async Task<IReadOnlyList<RunRecord>> Runs() => await Client.ListRunsAsync(new ListRunsParams { Workflow = "pausable", Limit = 1000 });
        await EventuallyAsync(async () => (await Runs()).Count >= 1, "the trigger fired");

        Assert.True(await Client.PauseCronTriggerAsync("pausable", "pausable-tick"));
        Assert.False(await Client.PauseCronTriggerAsync("pausable", "pausable-tick")); // idempotent
        var atPause = (await Runs()).Count;
        var pausedAt = (long)await TestEnv.Db.StringGetAsync(keys.CronPaused("pausable-tick"));
        Assert.True(Assert.Single((await Client.GetWorkflowMetaAsync("pausable"))!.Cron).Paused);
        Assert.True(Assert.Single((await Client.ListWorkflowsAsync()).Single(w => w.Name == "pausable").Cron).Paused);

        // The cron actor keeps handling the instants, without runs.
        await EventuallyAsync(async () => (long)await TestEnv.Db.StringGetAsync(keys.CronLast("pausable-tick")) >= pausedAt + 2000,
            "two instants passed while paused");
        Assert.Equal(atPause, (await Runs()).Count);
        Assert.Equal(atPause, (await Client.GetStatsAsync()).Counters["cron_fired"]);

        // With no cron actor running, more instants pass while paused; resumed, none of them fires.
        await worker.StopAsync();
        var lastHandled = (long)await TestEnv.Db.StringGetAsync(keys.CronLast("pausable-tick"));
        await EventuallyAsync(() => Task.FromResult(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() > lastHandled + 2500), "instants passed unhandled");
        Assert.True(await Client.ResumeCronTriggerAsync("pausable", "pausable-tick"));
        Assert.False(await Client.ResumeCronTriggerAsync("pausable", "pausable-tick")); // idempotent
        var resumedAt = (long)await TestEnv.Db.StringGetAsync(keys.CronLast("pausable-tick"));
        Assert.True(resumedAt > lastHandled + 2000, "resume advanced the last handled instant to now");
        Assert.False(Assert.Single((await Client.GetWorkflowMetaAsync("pausable"))!.Cron).Paused);

        await StartWorkerAsync(ticks);
        await EventuallyAsync(async () => (await Runs()).Count >= atPause + 2, "it fires again");
        var instants = (await Runs()).Select(r => long.Parse(r.IdempotencyKey!.Split(':')[^1])).Order().ToList();
        Assert.DoesNotContain(instants, i => i > pausedAt && i <= resumedAt);
    }

    [Fact]
    public async Task Trigger_now_emits_one_ordinary_run_with_the_triggers_input()
    {
        var yearly = Workflows.Define("yearly-report", async ctx => null, new WorkflowOptions
        {
            Cron = [new CronTrigger("0 0 1 1 *") { Id = "yearly", Input = new { region = "eu", jürgen = true } }],
        });
        await StartWorkerAsync(yearly);
        var info = Assert.Single((await Client.GetWorkflowMetaAsync("yearly-report"))!.Cron);
        Assert.Equal("eu", info.Input!.Value.GetProperty("region").GetString());
        Assert.False(info.Paused);

        var first = await Client.TriggerCronNowAsync("yearly-report", "yearly");
        await Client.PauseCronTriggerAsync("yearly-report", "yearly");
        var second = await Client.TriggerCronNowAsync("yearly-report", "yearly"); // a paused trigger can be triggered by hand
        Assert.NotEqual(first.RunId, second.RunId);
        foreach (var handle in new[] { first, second })
        {
            var run = await RunAsync(handle.RunId);
            Assert.Equal("yearly-report", run.Workflow);
            Assert.Null(run.IdempotencyKey);
            Assert.Equal("eu", run.Input.GetProperty("region").GetString());
            Assert.True(run.Input.GetProperty("jürgen").GetBoolean());
        }
        await EventuallyAsync(async () => (await RunAsync(second.RunId)).Status == RunStatus.Succeeded, "the triggered run ran");
    }

    [Fact]
    public async Task Unknown_workflow_or_trigger_is_refused_and_writes_nothing()
    {
        var wf = Workflows.Define("has-cron", async ctx => null, new WorkflowOptions { Cron = [new CronTrigger("0 0 1 1 *") { Id = "known" }] });
        await StartWorkerAsync(wf);
        var e1 = await Assert.ThrowsAsync<ArgumentException>(() => Client.PauseCronTriggerAsync("no-such-workflow", "known"));
        Assert.Contains("'no-such-workflow' is not registered", e1.Message);
        var e2 = await Assert.ThrowsAsync<ArgumentException>(() => Client.PauseCronTriggerAsync("has-cron", "unknown"));
        Assert.Contains("no cron trigger 'unknown'", e2.Message);
        Assert.Contains("'known'", e2.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => Client.ResumeCronTriggerAsync("has-cron", "unknown"));
        var e3 = await Assert.ThrowsAsync<ArgumentException>(() => Client.TriggerCronNowAsync("has-cron", "unknown"));
        Assert.Contains("no cron trigger 'unknown'", e3.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => Client.TriggerCronNowAsync("no-such-workflow", "known"));
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams()));
        var keys = new Keys(Prefix);
        Assert.False(await TestEnv.Db.KeyExistsAsync(keys.CronPaused("unknown")));
        Assert.False(await TestEnv.Db.KeyExistsAsync(keys.CronPaused("known")));
    }

    [Fact]
    public void Invalid_cron_expression_or_time_zone_fails_at_definition()
    {
        var bad = Assert.Throws<ArgumentException>(() => Workflows.Define("bad-cron", async ctx => null,
            new WorkflowOptions { Cron = [new CronTrigger("61 * * * *")] }));
        Assert.Contains("bad-cron", bad.Message);
        Assert.Contains("61 * * * *", bad.Message);
        var zone = Assert.Throws<ArgumentException>(() => Workflows.Define("bad-zone", async ctx => null,
            new WorkflowOptions { Cron = [new CronTrigger("0 * * * *") { Timezone = "Mars/Olympus" }] }));
        Assert.Contains("Mars/Olympus", zone.Message);
    }

    [Fact]
    public void Misfire_policies_choose_the_instants_to_fire()
    {
        var now = DateTimeOffset.Parse("2026-01-01T12:00:00Z");
        IReadOnlyList<DateTimeOffset> due = [now.AddMinutes(-3), now.AddMinutes(-2), now.AddMinutes(-1), now.AddSeconds(-1)];
        Assert.Equal([now.AddMinutes(-1), now.AddSeconds(-1)], CronActor.Choose(MisfirePolicy.RunOnce, due, now));
        Assert.Equal([now.AddSeconds(-1)], CronActor.Choose(MisfirePolicy.SkipAll, due, now));
        Assert.Equal(due, CronActor.Choose(MisfirePolicy.RunAll, due, now));
        // Only missed ticks (a singleton hand-over): the default runs the latest once, late.
        IReadOnlyList<DateTimeOffset> missed = [now.AddMinutes(-2), now.AddMinutes(-1)];
        Assert.Equal([now.AddMinutes(-1)], CronActor.Choose(MisfirePolicy.RunOnce, missed, now));
        Assert.Empty(CronActor.Choose(MisfirePolicy.SkipAll, missed, now));
    }

    [Fact]
    public void Daylight_saving_transitions_follow_cronos()
    {
        var schedule = CronSchedule.Parse(new CronTrigger("30 2 * * *") { Timezone = "Europe/Berlin" }, "dst");
        // Spring forward (2026-03-29, 02:00 -> 03:00 local): 02:30 does not exist; Cronos fires at 03:00 local (01:00 UTC).
        Assert.Equal(DateTimeOffset.Parse("2026-03-29T01:00:00Z"), schedule.Next(DateTimeOffset.Parse("2026-03-28T12:00:00Z")));
        // Fall back (2026-10-25, 03:00 -> 02:00 local): 02:30 happens twice; Cronos fires once, at the first (00:30 UTC).
        var first = schedule.Next(DateTimeOffset.Parse("2026-10-24T12:00:00Z"))!.Value;
        Assert.Equal(DateTimeOffset.Parse("2026-10-25T00:30:00Z"), first);
        Assert.Equal(DateTimeOffset.Parse("2026-10-26T01:30:00Z"), schedule.Next(first));
    }
}
