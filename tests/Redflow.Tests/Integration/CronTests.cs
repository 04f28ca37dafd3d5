using System.Collections.Concurrent;
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
