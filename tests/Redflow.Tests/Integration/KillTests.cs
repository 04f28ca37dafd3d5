using Redflow.Protocol;
using Redflow.TestProcesses;

namespace Redflow.Tests.Integration;

/// <summary>Worker processes killed with SIGKILL mid-step: the run is taken over in time and recorded steps do not run again.</summary>
public sealed class KillTests : WorkerTest
{
    [Fact]
    public async Task G4_G2_a_run_whose_worker_is_killed_mid_step_is_finished_by_another_worker_in_time()
    {
        var ledger = Path.Combine(Path.GetTempPath(), $"redflow-ledger-{Guid.NewGuid():N}.txt");
        var lease = TimeSpan.FromSeconds(2);
        var reaperInterval = TimeSpan.FromMilliseconds(500); // the fault worker's
        var config = RedisConnection.Parse(TestEnv.Url).ToString(includePassword: true);
        // The doomed worker holds step s01 until it is killed; the survivor runs it at once.
        await using var doomed = await WorkerProcess.StartAsync(config, Prefix, ledger, lease, 4, new Dictionary<string, string> { ["REDFLOW_HOLD_STEPS"] = "1" });
        var plan = new { steps = new object[] { new { ms = 0, fail = 0 }, new { ms = 0, fail = 0, hold = true }, new { ms = 0, fail = 0 } }, poison = -1 };
        var handle = await Client.EmitWorkflowAsync("fault-main", plan);
        await EventuallyAsync(() => Task.FromResult(Starts(ledger, handle.RunId, "s01").Any(l => l.Pid == doomed.Pid)),
            "the first worker is inside step s01");
        await using var survivor = await WorkerProcess.StartAsync(config, Prefix, ledger, lease, 4);

        var killedAt = await RedisNowAsync();
        doomed.Kill();

        var output = await handle.ResultAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(survivor.Pid, output.GetProperty("pid").GetInt32());
        var s00 = output.GetProperty("execs").GetProperty("s00").GetString();
        Assert.Equal(doomed.Pid, Assert.Single(Starts(ledger, handle.RunId, "s00")).Pid); // recorded before the kill: never ran again
        Assert.Equal(s00, Starts(ledger, handle.RunId, "s00")[0].Exec);                    // and served from the record
        Assert.Equal(2, Starts(ledger, handle.RunId, "s01").Count);                        // cut off mid-way: ran again
        Assert.All(Lines(ledger).Where(l => l.Run == handle.RunId), l => Assert.Equal(1, l.Attempt)); // a takeover is not a new attempt

        // Taken over within Lease + ReaperInterval (+ margin), on the Redis clock.
        var steps = await Client.GetRunStepsAsync(handle.RunId);
        var resumedAt = steps.Single(s => s.Name == "s01").StartedAt!.Value;
        var bound = lease + reaperInterval + TimeSpan.FromSeconds(2);
        Assert.True(resumedAt - killedAt <= bound, $"resumed {resumedAt - killedAt} after the kill; the bound is {bound}");
        var run = await RunAsync(handle.RunId);
        Assert.Equal(1, run.Attempt);
        Assert.Equal(1, run.Resumes);
        File.Delete(ledger);
    }

    private static async Task<DateTimeOffset> RedisNowAsync()
    {
        var time = await TestEnv.Db.ExecuteAsync("TIME");
        var parts = (StackExchange.Redis.RedisResult[])time!;
        return DateTimeOffset.FromUnixTimeMilliseconds(long.Parse((string)parts[0]!) * 1000 + long.Parse((string)parts[1]!) / 1000);
    }

    /// <summary>A fault-worker ledger line: "&lt;ms&gt; &lt;kind&gt; &lt;run&gt; &lt;step&gt; &lt;attempt&gt; &lt;pid&gt; &lt;inv&gt; &lt;extra&gt;".</summary>
    private sealed record Line(string Kind, string Run, string Step, int Attempt, int Pid, string Exec);

    private static List<Line> Lines(string path) => !File.Exists(path) ? [] : File.ReadAllLines(path)
        .Select(l => l.Split(' ')).Where(p => p.Length >= 8)
        .Select(p => new Line(p[1], p[2], p[3], int.Parse(p[4]), int.Parse(p[5]), p[7])).ToList();

    private static List<Line> Starts(string path, string run, string step) =>
        Lines(path).Where(l => l.Kind == "start" && l.Run == run && l.Step == step).ToList();
}
