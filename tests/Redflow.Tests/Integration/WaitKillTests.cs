using System.Text.Json;
using Redflow.Protocol;
using Redflow.TestProcesses;
using StackExchange.Redis;

namespace Redflow.Tests.Integration;

/// <summary>
/// Durable waits under real faults (G12): a worker process SIGKILLed while its runs sleep and wait on signals, and Redis
/// killed or shut down and restarted under AOF while they wait. No run and no acknowledged signal may be lost.
/// The runs are the fault worker's "fault-wait" plans (tests/Redflow.FaultWorker): steps, sleeps and signal waits.
/// </summary>
public sealed class WaitKillTests : WorkerTest
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task G12_a_worker_killed_while_its_runs_sleep_and_wait_on_signals_loses_no_run_and_no_signal()
    {
        var ledger = Path.Combine(Path.GetTempPath(), $"redflow-waitkill-{Guid.NewGuid():N}.txt");
        var config = RedisConnection.Parse(TestEnv.Url).ToString(includePassword: true);
        var keys = new Keys(Prefix);
        await using var doomed = await WorkerProcess.StartAsync(config, Prefix, ledger, Lease, 8);
        var workload = await EmitAsync(Client, TestEnv.Db, sleepMs: 8000, untilInMs: 10_000);
        await EventuallyAsync(() => AllWaitingAsync(Client, workload), "every run waits (sleeps and signal waits)", Deadline);

        // The first signal of each waiter just before the kill (the doomed worker may be taking it when it dies), the
        // second while no worker runs; the sleeps come due while no worker runs too.
        foreach (var w in workload.Waiters) Assert.True(await Client.SignalRunAsync(w.RunId, "go", new { k = 0, id = "sig-0" }));
        doomed.Kill();
        foreach (var w in workload.Waiters) Assert.True(await Client.SignalRunAsync(w.RunId, "go", new { k = 1, id = "sig-1" }));
        var latestDue = await LatestDueAsync(Client, workload);
        await EventuallyAsync(async () => await RedisNowMsAsync(TestEnv.Db) > latestDue + 500, "every sleep is due (Redis clock)", Deadline);
        Assert.All(await Task.WhenAll(workload.All.Select(h => Client.GetRunAsync(h.RunId))), r => Assert.False(r!.Status is RunStatus.Succeeded or RunStatus.Failed));

        await using var survivor = await WorkerProcess.StartAsync(config, Prefix, ledger, Lease, 8);
        await VerifyAsync(Client, TestEnv.Db, keys, workload, ledger, survivor.Pid);
        File.Delete(ledger);
    }

    [Theory]
    [InlineData("always", true)]    // SIGKILL: only what was fsynced survives, which with "always" is every acknowledged write
    [InlineData("everysec", false)] // SHUTDOWN: Redis writes the AOF out before it exits
    public async Task G12_Redis_restarted_under_AOF_while_runs_sleep_and_wait_on_signals_loses_no_run_and_no_signal(string fsync, bool kill)
    {
        await using var redis = await RedisProcess.StartAsync(null, true, "--appendfsync", fsync);
        const string prefix = "waitrestart";
        var keys = new Keys(prefix);
        var ledger = Path.Combine(Path.GetTempPath(), $"redflow-waitrestart-{Guid.NewGuid():N}.txt");
        await using var worker = await WorkerProcess.StartAsync(redis.Config, prefix, ledger, Lease, 8);
        await using var client = RedflowClient.Create(new RedflowClientOptions { Url = redis.Url, Prefix = prefix });
        await using var raw = await ConnectionMultiplexer.ConnectAsync(redis.Config + ",abortConnect=false");
        var workload = await EmitAsync(client, raw.GetDatabase(), sleepMs: 5000, untilInMs: 6000);
        await EventuallyAsync(() => AllWaitingAsync(client, workload), "every run waits (sleeps and signal waits)", Deadline);

        // The first signal of each waiter acknowledged just before Redis goes (the worker takes some of them as it does).
        foreach (var w in workload.Waiters) Assert.True(await client.SignalRunAsync(w.RunId, "go", new { k = 0, id = "sig-0" }));
        if (kill) await redis.KillAsync();
        else await redis.ShutdownAsync();
        await Task.Delay(TimeSpan.FromSeconds(3)); // the outage (some sleeps come due meanwhile)
        await redis.StartAgainAsync();

        // The second signal once Redis is back (the client reconnects: a send that fails was not acknowledged, and is sent again).
        foreach (var w in workload.Waiters)
        {
            var delivered = false;
            await EventuallyAsync(async () =>
            {
                try
                {
                    delivered = await client.SignalRunAsync(w.RunId, "go", new { k = 1, id = "sig-1" });
                    return true;
                }
                catch (RedisException) { return false; }
                catch (TimeoutException) { return false; }
            }, "a signal is acknowledged after the restart", Deadline);
            Assert.True(delivered, $"run {w.RunId} refused its second signal");
        }
        await VerifyAsync(client, raw.GetDatabase(), keys, workload, ledger, worker.Pid);
        File.Delete(ledger);
    }

    /// <summary>Runs of the workload: sleepers (SleepAsync), untils (SleepUntilAsync) and waiters (two signal waits).</summary>
    private sealed record Workload(List<RunHandle> Sleepers, List<RunHandle> Untils, long UntilMs, int SleepMs, List<RunHandle> Waiters)
    {
        public IEnumerable<RunHandle> All => Sleepers.Concat(Untils).Concat(Waiters);
    }

    /// <summary>The latest wake time of the sleeping runs (RunRecord.Waits, Redis clock, ms), once every run waits.</summary>
    private static async Task<long> LatestDueAsync(IRedflowClient client, Workload workload)
    {
        var latest = 0L;
        foreach (var h in workload.Sleepers.Concat(workload.Untils))
        {
            var wait = Assert.Single((await client.GetRunAsync(h.RunId))!.Waits);
            Assert.Equal(WaitKind.Sleep, wait.Kind);
            latest = Math.Max(latest, wait.Until!.Value.ToUnixTimeMilliseconds());
        }
        return latest;
    }

    private static async Task<Workload> EmitAsync(IRedflowClient client, IDatabase db, int sleepMs, int untilInMs)
    {
        var now = await RedisNowMsAsync(db);
        var step = new { ms = 0, fail = 0 };
        var untilMs = now + untilInMs;
        var sleepers = new List<RunHandle>();
        var untils = new List<RunHandle>();
        var waiters = new List<RunHandle>();
        for (var i = 0; i < 4; i++)
        {
            sleepers.Add(await client.EmitWorkflowAsync("fault-wait", new { steps = new object[] { step, new { wait = "sleep", ms = sleepMs }, step }, poison = -1 }));
            untils.Add(await client.EmitWorkflowAsync("fault-wait", new { steps = new object[] { step, new { wait = "until", at = untilMs }, step }, poison = -1 }));
        }
        for (var i = 0; i < 6; i++)
            waiters.Add(await client.EmitWorkflowAsync("fault-wait", new { steps = new object[] { step, new { wait = "signal" }, step, new { wait = "signal" }, step }, poison = -1 }));
        return new Workload(sleepers, untils, untilMs, sleepMs, waiters);
    }

    private static async Task<bool> AllWaitingAsync(IRedflowClient client, Workload workload)
    {
        foreach (var h in workload.All)
            if ((await client.GetRunAsync(h.RunId))?.Status != RunStatus.Waiting) return false;
        return true;
    }

    /// <summary>
    /// Every run succeeds; each waiter took sig-0 then sig-1 (each once, none left in its buffer); each sleep's record is
    /// no earlier than its due time (Redis clock) and no handler saw the sleep return before that record.
    /// </summary>
    private static async Task VerifyAsync(IRedflowClient client, IDatabase db, Keys keys, Workload workload, string ledger, int finisherPid)
    {
        foreach (var h in workload.All)
        {
            var output = await h.ResultAsync(Deadline);
            Assert.Equal(finisherPid, output.GetProperty("pid").GetInt32());
        }
        foreach (var h in workload.Waiters)
        {
            var execs = (await h.ResultAsync(Deadline)).GetProperty("execs");
            Assert.Equal(("sig-0", "sig-1"), (execs.GetProperty("s01").GetString(), execs.GetProperty("s03").GetString()));
            var steps = await client.GetRunStepsAsync(h.RunId);
            Assert.Equal(["sig-0", "sig-1"], steps.Where(s => s.Name is "s01" or "s03").OrderBy(s => s.Name, StringComparer.Ordinal)
                .Select(s => s.Output!.Value.GetProperty("id").GetString()));
            Assert.Equal(0, await db.ListLengthAsync(keys.Signals(h.RunId))); // nothing left over, nothing taken twice
            foreach (var took in Lines(ledger).Where(l => l.Run == h.RunId && l.Kind == "took"))
                Assert.Equal(took.Step == "s01" ? "sig-0" : "sig-1", took.Extra); // every handler got the recorded signal
        }
        foreach (var (h, due) in workload.Sleepers.Select(h => (h, (long?)null)).Concat(workload.Untils.Select(h => (h, (long?)workload.UntilMs))))
        {
            var run = (await client.GetRunAsync(h.RunId))!;
            var nap = (await client.GetRunStepsAsync(h.RunId)).Single(s => s.Name == "s01");
            Assert.Equal(RunStatus.Succeeded, nap.Status);
            Assert.Equal(JsonValueKind.Null, nap.Output!.Value.ValueKind);
            var dueMs = due ?? nap.StartedAt!.Value.ToUnixTimeMilliseconds() + workload.SleepMs;
            var recordedMs = nap.FinishedAt!.Value.ToUnixTimeMilliseconds();
            Assert.True(recordedMs >= dueMs, $"sleep of {h.RunId} recorded at {recordedMs}, before it was due ({dueMs})");
            Assert.True(run.FinishedAt!.Value.ToUnixTimeMilliseconds() >= dueMs, $"run {h.RunId} finished before its sleep was due");
            var woke = Lines(ledger).Where(l => l.Run == h.RunId && l.Kind == "woke" && l.Extra != "?").ToList();
            Assert.NotEmpty(woke);
            Assert.All(woke, l => Assert.True(long.Parse(l.Extra) >= recordedMs, $"a handler saw the sleep of {h.RunId} end at {l.Extra}, before its record ({recordedMs})"));
        }
    }

    private static async Task<long> RedisNowMsAsync(IDatabase db)
    {
        var parts = (RedisResult[])(await db.ExecuteAsync("TIME"))!;
        return long.Parse((string)parts[0]!) * 1000 + long.Parse((string)parts[1]!) / 1000;
    }

    /// <summary>A fault-worker ledger line: "&lt;ms&gt; &lt;kind&gt; &lt;run&gt; &lt;step&gt; &lt;attempt&gt; &lt;pid&gt; &lt;inv&gt; &lt;extra&gt;".</summary>
    private sealed record Line(string Kind, string Run, string Step, int Pid, string Extra);

    private static List<Line> Lines(string path) => !File.Exists(path) ? [] : File.ReadAllLines(path)
        .Select(l => l.Split(' ')).Where(p => p.Length >= 8)
        .Select(p => new Line(p[1], p[2], p[3], int.Parse(p[5]), p[7])).ToList();
}
