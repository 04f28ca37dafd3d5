using Redflow.TestProcesses;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Redflow.FaultTests;

/// <summary>
/// The fault harness: worker processes SIGKILLed and SIGSTOPped, Redis restarted, connections
/// killed, Redis paused, several reapers at once, under a mixed workload; then the guarantees are checked
/// against Redis's records and the workers' independent ledgers. See docs/reliability.md.
/// </summary>
public sealed class FaultTests(ITestOutputHelper output)
{
    /// <summary>About two minutes with a fixed seed: part of every CI run.</summary>
    [Fact]
    public Task Short_profile_keeps_every_guarantee_under_faults() => RunProfileAsync(FaultProfile.Short);

    /// <summary>30 minutes (REDFLOW_FAULT_MINUTES to change), five workers.</summary>
    [Fact]
    [Trait("Category", "Slow")]
    public Task Long_profile_keeps_every_guarantee_under_faults() =>
        RunProfileAsync(FaultProfile.Long(TimeSpan.FromMinutes(Minutes("REDFLOW_FAULT_MINUTES", 30))));

    /// <summary>10 minutes (REDFLOW_SOAK_MINUTES) of steady load on one worker: worker and Redis memory stay flat once retention purges.</summary>
    [Fact]
    [Trait("Category", "Slow")]
    public async Task Soak_memory_stays_flat_under_steady_load()
    {
        var minutes = Minutes("REDFLOW_SOAK_MINUTES", 10);
        var root = Path.Combine(Path.GetTempPath(), "redflow-faults", $"soak-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        Directory.CreateDirectory(root);
        await using var redis = await RedisProcess.StartAsync(Path.Combine(root, "redis"));
        await using var worker = await WorkerProcess.StartAsync(redis.Config, "soak", Path.Combine(root, "worker.ledger"), TimeSpan.FromSeconds(5), 10);
        await using var client = RedflowClient.Create(new RedflowClientOptions { Url = redis.Config, Prefix = "soak" });
        await using var raw = await ConnectionMultiplexer.ConnectAsync(redis.Config + ",allowAdmin=true");
        var clock = Stopwatch.StartNew();
        var until = TimeSpan.FromMinutes(minutes);
        var emitted = 0;
        var rng = new Random(99);
        var samples = new List<(TimeSpan At, long Heap, long WorkingSet, long RedisUsed, long Runs, long Succeeded)>();
        var nextSample = TimeSpan.Zero;
        var inFlight = new List<Task>();
        while (clock.Elapsed < until)
        {
            // About 40 runs a second, each of 1 to 3 short steps; retention of the "soak" workflow is 20 s.
            for (var i = 0; i < 4; i++)
            {
                var steps = Enumerable.Range(0, rng.Next(1, 4)).Select(_ => new { ms = rng.Next(0, 20), fail = 0 }).ToArray();
                inFlight.Add(client.EmitWorkflowAsync("soak", new { steps, poison = -1 }));
                emitted++;
            }
            if (inFlight.Count > 200) { await Task.WhenAll(inFlight); inFlight.Clear(); }
            if (clock.Elapsed >= nextSample)
            {
                var db = raw.GetDatabase();
                var info = (string)(await db.ExecuteAsync("INFO", "memory"))!;
                var used = long.Parse(info.Split('\n').First(l => l.StartsWith("used_memory:", StringComparison.Ordinal))[12..].Trim(), CultureInfo.InvariantCulture);
                long runs = 0;
                foreach (var wf in await db.SetMembersAsync("{soak}:workflows")) runs += await db.SortedSetLengthAsync("{soak}:wfruns:" + wf);
                var succeeded = (long?)await db.HashGetAsync("{soak}:counters", "succeeded") ?? 0;
                var mem = worker.Memory.LastOrDefault();
                samples.Add((clock.Elapsed, mem.Heap, mem.WorkingSet, used, runs, succeeded));
                output.WriteLine($"{clock.Elapsed:mm\\:ss} heap {mem.Heap / 1048576.0,7:0.0} MB  ws {mem.WorkingSet / 1048576.0,7:0.0} MB  redis used {used / 1048576.0,7:0.0} MB  runs kept {runs,6}  succeeded {succeeded,8}");
                nextSample += TimeSpan.FromSeconds(30);
            }
            await Task.Delay(100);
        }
        await Task.WhenAll(inFlight);
        var report = new StringBuilder();
        report.AppendLine($"== soak: {minutes} min, {emitted} runs emitted ==");
        report.AppendLine("time   worker-heap-MB worker-ws-MB redis-used-MB runs-kept succeeded");
        foreach (var s in samples)
            report.AppendLine($"{s.At:mm\\:ss}  {s.Heap / 1048576.0,13:0.0} {s.WorkingSet / 1048576.0,12:0.0} {s.RedisUsed / 1048576.0,13:0.0} {s.Runs,9} {s.Succeeded,9}");
        Emit("soak", report.ToString(), root);
        // Flat once retention applies: after the first quarter, neither Redis nor the worker's working set keeps growing.
        var settled = samples.Where(s => s.At >= until / 4).ToList();
        Assert.True(settled.Count >= 2, "too few samples");
        Assert.True(settled[^1].RedisUsed < settled[0].RedisUsed * 1.5 + 4 * 1048576,
            $"Redis used_memory grew from {settled[0].RedisUsed} to {settled[^1].RedisUsed} bytes");
        Assert.True(settled[^1].WorkingSet < settled[0].WorkingSet * 1.5 + 32 * 1048576,
            $"worker working set grew from {settled[0].WorkingSet} to {settled[^1].WorkingSet} bytes");
    }

    private async Task RunProfileAsync(FaultProfile profile)
    {
        await using var harness = new FaultHarness(profile, line => output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {line}"));
        var report = await harness.RunAsync();
        var text = report.Render($"fault harness, {profile.Name} profile: seed {profile.Seed}, {profile.Workers} workers x {profile.Concurrency} slots, " +
                                 $"{profile.FaultPhase.TotalMinutes:0.#} min of faults, lease {profile.Lease.TotalSeconds:0.#} s");
        Emit(profile.Name, text, harness.Root);
        Assert.True(report.Violations.Count == 0, $"{report.Violations.Count} invariant violations:\n{string.Join("\n", report.Violations.Take(20))}");
        Assert.True(report.Counts.GetValueOrDefault("runs in redis") > 50, "the workload barely ran");
        Assert.True(report.Faults.Values.Sum() > 5, "hardly any faults were injected");
    }

    private void Emit(string name, string text, string root)
    {
        output.WriteLine(text);
        var path = Path.Combine(root, $"{name}-report.txt");
        File.WriteAllText(path, text);
        Console.WriteLine(text);
        Console.WriteLine($"report written to {path}");
    }

    private static double Minutes(string variable, double fallback) =>
        double.TryParse(Environment.GetEnvironmentVariable(variable), NumberStyles.Float, CultureInfo.InvariantCulture, out var m) ? m : fallback;
}
