using Redflow.Protocol;
using Redflow.TestProcesses;
using StackExchange.Redis;

namespace Redflow.Tests.Integration;

/// <summary>
/// Flow control under a real fault (G13 with G4): a worker process SIGKILLed while its run holds the only slot of a
/// flow-control key. The slot must come back with the takeover of the expired lease, and the cap must hold throughout.
/// The runs are the fault worker's "fault-keyed" plans (tests/Redflow.FaultWorker, MaxConcurrencyPerKey = 1).
/// </summary>
public sealed class FlowKillTests : WorkerTest
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task G13_G4_per_key_slots_are_reclaimed_after_a_worker_is_SIGKILLed_and_the_key_never_runs_two_at_once()
    {
        var ledger = Path.Combine(Path.GetTempPath(), $"redflow-flowkill-{Guid.NewGuid():N}.txt");
        var config = RedisConnection.Parse(TestEnv.Url).ToString(includePassword: true);
        var keys = new Keys(Prefix);
        var db = TestEnv.Db;
        var slot = keys.KeyRunning("fault-keyed", "k");

        // The doomed worker holds step s01 of the first run of key "k" until it is killed; the survivor holds nothing.
        await using var doomed = await WorkerProcess.StartAsync(config, Prefix, ledger, Lease, 4, new Dictionary<string, string> { ["REDFLOW_HOLD_STEPS"] = "1" });
        var held = new { steps = new object[] { new { ms = 0, fail = 0 }, new { ms = 0, fail = 0, hold = true }, new { ms = 0, fail = 0 } }, poison = -1 };
        var first = await Client.EmitWorkflowAsync("fault-keyed", held, new EmitOptions { Key = "k" });
        await EventuallyAsync(() => Task.FromResult(Starts(ledger, first.RunId, "s01").Any(l => l.Pid == doomed.Pid)),
            "the doomed worker is inside step s01 of the first run", Deadline);
        await using var survivor = await WorkerProcess.StartAsync(config, Prefix, ledger, Lease, 4);

        // From here on, sample (atomically) the key's slot set and both runs' statuses: never two at once.
        var second = await Client.EmitWorkflowAsync("fault-keyed", new { steps = new object[] { new { ms = 0, fail = 0 }, new { ms = 200, fail = 0 }, new { ms = 0, fail = 0 } }, poison = -1 },
            new EmitOptions { Key = "k" });
        using var stopSampling = new CancellationTokenSource();
        var sampler = SampleAsync(db, keys, slot, first.RunId, second.RunId, stopSampling.Token);

        // Both workers have free slots and take other runs (another key, no key), yet the second run of "k" waits.
        var probes = new List<RunHandle>();
        for (var i = 0; i < 4; i++)
        {
            probes.Add(await Client.EmitWorkflowAsync("fault-keyed", new { steps = new object[] { new { ms = 0, fail = 0 } }, poison = -1 }, new EmitOptions { Key = $"other-{i}" }));
            probes.Add(await Client.EmitWorkflowAsync("fault-keyed", new { steps = new object[] { new { ms = 0, fail = 0 } }, poison = -1 }));
        }
        foreach (var p in probes) await p.ResultAsync(Deadline);
        Assert.Equal(RunStatus.Running, (await RunAsync(first.RunId)).Status);
        Assert.Equal(RunStatus.Queued, (await RunAsync(second.RunId)).Status);
        Assert.Equal([first.RunId], (await db.SetMembersAsync(slot)).Select(v => (string)v!));
        await EventuallyAsync(async () => (await Client.GetWorkflowMetaAsync("fault-keyed"))!.HeldBack == 1, "the second run is held back by its key", Deadline);
        Assert.DoesNotContain(Lines(ledger), l => l.Run == second.RunId); // no worker so much as began it

        var killedAt = await RedisNowAsync();
        var killedAtLocal = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        doomed.Kill();

        // The survivor takes the first run over once its lease expires (the reaper frees the key's slot), then runs the second.
        var firstOut = await first.ResultAsync(Deadline);
        var secondOut = await second.ResultAsync(Deadline);
        stopSampling.Cancel();
        var (samples, violations) = await sampler;
        Assert.Empty(violations);
        Assert.True(samples > 0);

        Assert.Equal(survivor.Pid, firstOut.GetProperty("pid").GetInt32());
        Assert.Equal(survivor.Pid, secondOut.GetProperty("pid").GetInt32());
        Assert.Equal(doomed.Pid, Assert.Single(Starts(ledger, first.RunId, "s00")).Pid); // recorded before the kill: not run again
        Assert.Equal([doomed.Pid, survivor.Pid], Starts(ledger, first.RunId, "s01").Select(l => l.Pid)); // cut off mid-way: ran again
        Assert.All(Lines(ledger).Where(l => l.Run == second.RunId), l => Assert.Equal(survivor.Pid, l.Pid));

        // On the Redis clock: the first run resumed after the kill, the second started after the first finished (a
        // takeover goes back to the front of its key's runs), and on the worker's clock neither handler overlapped.
        var run1 = await RunAsync(first.RunId);
        var run2 = await RunAsync(second.RunId);
        Assert.Equal((RunStatus.Succeeded, RunStatus.Succeeded), (run1.Status, run2.Status));
        Assert.Equal((1, 1, 0), (run1.Attempt, run1.Resumes, run2.Resumes));
        var resumedAt = (await Client.GetRunStepsAsync(first.RunId)).Single(s => s.Name == "s01").StartedAt!.Value;
        Assert.True(resumedAt >= killedAt, $"the first run's s01 was recorded as started at {resumedAt:O}, before the kill at {killedAt:O}");
        Assert.True(run2.StartedAt!.Value >= run1.FinishedAt!.Value,
            $"the second run started at {run2.StartedAt:O}, before the first finished at {run1.FinishedAt:O}");
        var firstLast = Lines(ledger).Where(l => l.Run == first.RunId && l.Pid == survivor.Pid).Max(l => l.Ms);
        var secondBegin = Lines(ledger).Where(l => l.Run == second.RunId).Min(l => l.Ms);
        Assert.True(secondBegin >= firstLast, $"the second run's handler began at {secondBegin}, before the first's last line at {firstLast}");
        Assert.True(secondBegin >= killedAtLocal);

        // Nothing of the key is left: no slot, no parked marker, nothing held back.
        Assert.False(await db.KeyExistsAsync(slot), $"{slot} still holds {string.Join(", ", await db.SetMembersAsync(slot))}");
        Assert.False(await db.KeyExistsAsync(keys.KeyParked("fault-keyed", "k")));
        Assert.Equal(0, (await Client.GetWorkflowMetaAsync("fault-keyed"))!.HeldBack);
        Assert.Equal(0, await db.SetLengthAsync(keys.Running("fault-keyed")));
        File.Delete(ledger);
    }

    /// <summary>
    /// Until canceled, reads the key's slot set and both runs' statuses in one transaction every 20 ms; returns what broke
    /// the cap (more than one slot taken, or both runs running) and how many samples it took.
    /// </summary>
    private static async Task<(int Samples, List<string> Violations)> SampleAsync(IDatabase db, Keys keys, RedisKey slot, string first, string second, CancellationToken stop)
    {
        var violations = new List<string>();
        var samples = 0;
        while (!stop.IsCancellationRequested)
        {
            var tx = db.CreateTransaction();
            var taken = tx.SetLengthAsync(slot);
            var s1 = tx.HashGetAsync(keys.Run(first), "status");
            var s2 = tx.HashGetAsync(keys.Run(second), "status");
            if (await tx.ExecuteAsync())
            {
                samples++;
                if (await taken > 1) violations.Add($"{await taken} slots of key k taken at once");
                if (await s1 == "running" && await s2 == "running") violations.Add("both runs of key k running at once");
            }
            try { await Task.Delay(20, stop); } catch (OperationCanceledException) { }
        }
        return (samples, violations);
    }

    private static async Task<DateTimeOffset> RedisNowAsync()
    {
        var parts = (RedisResult[])(await TestEnv.Db.ExecuteAsync("TIME"))!;
        return DateTimeOffset.FromUnixTimeMilliseconds(long.Parse((string)parts[0]!) * 1000 + long.Parse((string)parts[1]!) / 1000);
    }

    /// <summary>A fault-worker ledger line: "&lt;ms&gt; &lt;kind&gt; &lt;run&gt; &lt;step&gt; &lt;attempt&gt; &lt;pid&gt; &lt;inv&gt; &lt;extra&gt;".</summary>
    private sealed record Line(long Ms, string Kind, string Run, string Step, int Pid);

    private static List<Line> Lines(string path) => !File.Exists(path) ? [] : File.ReadAllLines(path)
        .Select(l => l.Split(' ')).Where(p => p.Length >= 8)
        .Select(p => new Line(long.Parse(p[0]), p[1], p[2], p[3], int.Parse(p[5]))).ToList();

    private static List<Line> Starts(string path, string run, string step) =>
        Lines(path).Where(l => l.Kind == "start" && l.Run == run && l.Step == step).ToList();
}
