namespace Redflow.Tests.Integration;

/// <summary>G11 on a Redis server of this test's own (its configuration is changed here), and two reapers at once.</summary>
public sealed class PreconditionTests : WorkerTest
{
    [Fact]
    public async Task G11_a_worker_refuses_an_evicting_redis_unless_told_to_skip_the_check()
    {
        await using var server = await Redflow.TestProcesses.RedisProcess.StartAsync(null, false, "--maxmemory-policy", "allkeys-lru");
        var workflow = Workflows.Define("g11", async ctx => null);
        var options = new StartWorkerOptions { Url = server.Url, Workflows = [workflow] };
        RedflowException? refused = null;
        await EventuallyAsync(async () =>
        {
            try { await (await RedflowWorker.StartAsync(options)).StopAsync(); }
            catch (RedflowException ex) when (ex.Message.Contains("maxmemory-policy")) { refused = ex; }
            catch (RedflowException) { } // not up yet
            return refused is not null;
        }, "the worker refuses the evicting server");
        Assert.Contains("noeviction", refused!.Message);
        Assert.Contains("SkipPreconditionChecks", refused.Message);

        await using var anyway = await RedflowWorker.StartAsync(options with { SkipPreconditionChecks = true });
    }

    [Fact]
    public async Task Two_reapers_at_once_take_a_run_back_once()
    {
        var release = new TaskCompletionSource();
        var starts = 0;
        var workflow = Workflows.Define("reaped", async ctx =>
        {
            if (Interlocked.Increment(ref starts) == 1) await release.Task; // the first holder stalls
            return null;
        }, new WorkflowOptions { MaxConcurrency = 5 });
        // Each standalone worker runs its own reaper: two reapers on one Redis.
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [workflow], Lease = TimeSpan.FromSeconds(30) });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [workflow], Lease = TimeSpan.FromSeconds(30) });
        var handle = await Client.EmitWorkflowAsync("reaped", null);
        await EventuallyAsync(() => Task.FromResult(Volatile.Read(ref starts) == 1), "the run started");
        await TestEnv.Db.SortedSetAddAsync(TestEnv.Store(Prefix).Keys.Leases("default"), handle.RunId, 0); // its lease expired
        await handle.ResultAsync(Generous);
        release.SetResult();
        Assert.Equal(1, (await RunAsync(handle.RunId)).Resumes);
        Assert.Equal(2, Volatile.Read(ref starts));
        Assert.Equal(1, (await Client.GetStatsAsync()).Counters["reaped"]);
    }
}
