using Redflow.Protocol;

namespace Redflow.Tests.Integration;

/// <summary>Worker processes killed with SIGKILL mid-step: the run is taken over in time and recorded steps do not run again.</summary>
public sealed class KillTests : WorkerTest
{
    [Fact]
    public async Task G4_G2_a_run_whose_worker_is_killed_mid_step_is_finished_by_another_worker_in_time()
    {
        var ledger = Path.Combine(Path.GetTempPath(), $"redflow-ledger-{Guid.NewGuid():N}.txt");
        var lease = TimeSpan.FromSeconds(2);
        var reaperInterval = TimeSpan.FromMilliseconds(200);
        await using var doomed = await WorkerProcess.StartAsync(Prefix, ledger, lease, stepTwoSleepMs: 60_000);
        var handle = await Client.EmitWorkflowAsync("ledger", new { n = 1 });
        await EventuallyAsync(() => Task.FromResult(Lines(ledger).Any(l => l.StartsWith($"{handle.RunId} two 1 {doomed.Pid} start"))),
            "the first worker is inside step two");
        await using var survivor = await WorkerProcess.StartAsync(Prefix, ledger, lease, stepTwoSleepMs: 0);

        var killedAt = await RedisNowAsync();
        doomed.Kill();

        var output = await handle.ResultAsync(TimeSpan.FromSeconds(60));
        Assert.Equal($"three-done-by-{survivor.Pid}", output.GetProperty("c").GetString());
        Assert.Equal($"one-done-by-{doomed.Pid}", output.GetProperty("a").GetString()); // recorded before the kill: served from the record

        var lines = Lines(ledger).Where(l => l.StartsWith(handle.RunId)).ToList();
        Assert.Single(lines, l => l.Contains(" one ") && l.EndsWith("start"));      // step one never ran again
        Assert.Equal(2, lines.Count(l => l.Contains(" two ") && l.EndsWith("start"))); // cut off mid-way: ran again
        Assert.All(lines, l => Assert.Contains(" 1 ", l));                              // a takeover is not a new attempt

        // Taken over within Lease + ReaperInterval (+ margin), on the Redis clock.
        var steps = await Client.GetRunStepsAsync(handle.RunId);
        var resumedAt = steps.Single(s => s.Name == "two").StartedAt!.Value;
        var bound = lease + reaperInterval + TimeSpan.FromSeconds(2);
        Assert.True(resumedAt - killedAt <= bound, $"resumed {resumedAt - killedAt} after the kill; the bound is {bound}");
        var run = await RunAsync(handle.RunId);
        Assert.Equal(1, run.Attempt);
        Assert.Equal(1, run.Resumes);
    }

    private static async Task<DateTimeOffset> RedisNowAsync()
    {
        var time = await TestEnv.Db.ExecuteAsync("TIME");
        var parts = (StackExchange.Redis.RedisResult[])time!;
        return DateTimeOffset.FromUnixTimeMilliseconds(long.Parse((string)parts[0]!) * 1000 + long.Parse((string)parts[1]!) / 1000);
    }

    private static string[] Lines(string path) => File.Exists(path) ? File.ReadAllLines(path) : [];
}
