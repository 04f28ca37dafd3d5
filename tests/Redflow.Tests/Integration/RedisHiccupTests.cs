using Redflow.TestProcesses;
using Xunit.Abstractions;

namespace Redflow.Tests.Integration;

/// <summary>
/// Redis pauses and outages as production meets them, on a Redis server of each test's own: a healthy run is
/// never failed as abandoned because Redis was unreachable (G4 counts only workers that died), and an outage
/// costs a worker a few log lines, not one per actor per interval.
/// </summary>
public sealed class RedisHiccupTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task G4_two_pauses_longer_than_the_lease_while_claims_are_in_flight_fail_no_run()
    {
        await using var redis = await RedisProcess.StartAsync(aof: false);
        const string prefix = "hiccup";
        var steady = Workflows.Define("steady", async ctx =>
        {
            for (var i = 0; i < 3; i++)
                await ctx.Step.RunAsync($"s{i}", async ct =>
                {
                    await Task.Delay(30, ct);
                    return i;
                });
            return null;
        }, new WorkflowOptions { MaxConcurrency = 6 });
        // A short lease, and more slots than the cap: the pollers always have free slots, so claims are sent while Redis
        // is paused and answered only after the pause, later than a deadline counted from their send time.
        var options = new StartWorkerOptions
        {
            Url = redis.Url, Prefix = prefix, Workflows = [steady], Concurrency = 10, Lease = TimeSpan.FromSeconds(1),
            ReaperInterval = TimeSpan.FromMilliseconds(200), BlmoveTimeout = TimeSpan.FromMilliseconds(200), AbandonAfter = 2,
        };
        await using var first = await RedflowWorker.StartAsync(options);
        await using var second = await RedflowWorker.StartAsync(options);
        await using var client = RedflowClient.Create(new RedflowClientOptions { Url = redis.Url, Prefix = prefix });
        var handles = new List<RunHandle>();
        for (var i = 0; i < 150; i++) handles.Add(await client.EmitWorkflowAsync("steady", new { n = i }));

        for (var pause = 1; pause <= 2; pause++)
        {
            var before = await CountAsync(client, RunStatus.Succeeded);
            await EventuallyAsync(async () => await CountAsync(client, RunStatus.Succeeded) >= before + 3, "runs make progress before the pause");
            await redis.PauseAsync(TimeSpan.FromMilliseconds(1800)); // longer than the lease
            await client.GetStatsAsync(); // answered once the pause is over
            output.WriteLine($"pause {pause}: over, {await CountAsync(client, RunStatus.Succeeded)} runs succeeded");
        }

        await EventuallyAsync(async () =>
        {
            var finished = 0;
            foreach (var status in new[] { RunStatus.Succeeded, RunStatus.Failed, RunStatus.Canceled }) finished += await CountAsync(client, status);
            return finished == handles.Count;
        }, "every run finished");
        var stats = await client.GetStatsAsync();
        output.WriteLine(string.Join(", ", stats.Counters.Select(kv => $"{kv.Key}={kv.Value}")));
        var failed = await client.ListRunsAsync(new ListRunsParams { Workflow = "steady", Status = RunStatus.Failed, Limit = 10 });
        Assert.True(failed.Count == 0, $"{failed.Count} runs of a workflow that never fails failed: {failed.FirstOrDefault()?.Error?.Message}");
        Assert.Equal(handles.Count, await CountAsync(client, RunStatus.Succeeded));
    }

    [Fact]
    public async Task A_Redis_outage_costs_a_worker_a_few_log_lines_and_every_run_finishes_after_Redis_returns()
    {
        var outage = TimeSpan.FromSeconds(int.TryParse(Environment.GetEnvironmentVariable("REDFLOW_OUTAGE_SECONDS"), out var s) ? s : 60);
        await using var redis = await RedisProcess.StartAsync();
        const string prefix = "outage";
        var ledger = Path.Combine(Path.GetTempPath(), $"redflow-outage-{Guid.NewGuid():N}.txt");
        await using var worker = await WorkerProcess.StartAsync(redis.Config, prefix, ledger, TimeSpan.FromSeconds(2), 4,
            new Dictionary<string, string> { ["REDFLOW_TEST_LOG"] = "1" });
        await using var client = RedflowClient.Create(new RedflowClientOptions { Url = redis.Url, Prefix = prefix });
        var handles = new List<RunHandle>();
        var plan = new { steps = new object[] { new { ms = 0, fail = 0 }, new { ms = 200, fail = 0 }, new { ms = 0, fail = 0 } }, poison = -1 };
        for (var i = 0; i < 40; i++) handles.Add(await client.EmitWorkflowAsync("fault-main", plan));
        await EventuallyAsync(async () => await CountAsync(client, RunStatus.Succeeded) >= 2, "runs are under way");

        var linesBefore = worker.Output.Count;
        await redis.KillAsync();
        await Task.Delay(outage); // the outage itself: Redis is gone this long
        await redis.StartAgainAsync();
        await EventuallyAsync(async () => await CountAsync(client, RunStatus.Succeeded) == handles.Count, "every run succeeded after Redis returned");

        var during = worker.Output.Skip(linesBefore).ToList();
        output.WriteLine($"{during.Count} lines logged by the worker over a {outage.TotalSeconds} s outage and the recovery:");
        foreach (var line in during) output.WriteLine(line);
        Assert.True(during.Count <= 6, $"the worker logged {during.Count} lines over the outage:\n{string.Join("\n", during)}");
        Assert.Contains(during, l => l.Contains("lost Redis"));
        Assert.Contains(during, l => l.Contains("reachable again"));
        File.Delete(ledger);
    }

    private static async Task<int> CountAsync(IRedflowClient client, RunStatus status)
    {
        var stats = await client.GetStatsAsync();
        return stats.RunCounts.TryGetValue(status, out var n) ? (int)n : 0;
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string because)
    {
        var until = DateTime.UtcNow + Generous;
        while (true)
        {
            try
            {
                if (await condition()) return;
            }
            catch (StackExchange.Redis.RedisException) when (DateTime.UtcNow < until) { } // Redis coming back
            if (DateTime.UtcNow > until) throw new Xunit.Sdk.XunitException($"Timed out waiting until {because}.");
            await Task.Delay(50);
        }
    }
}
