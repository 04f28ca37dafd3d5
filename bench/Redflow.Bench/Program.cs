// Redflow benchmark: the workloads of docs/benchmarks.md against one Redis (bench/run.sh starts a fresh one).
// Usage: Redflow.Bench <redis-url> [--quick] [--only <workload>]. Prints one machine-readable line per workload:
//   redflow <workload> key=value ...
using System.Collections.Concurrent;
using System.Diagnostics;
using Redflow;
using StackExchange.Redis;

var url = args[0];
var quick = args.Contains("--quick");
var mux = await ConnectionMultiplexer.ConnectAsync(url.Replace("redis://", "") + ",allowAdmin=true");
var server = mux.GetServers()[0];
var db = mux.GetDatabase();

var warmUpRuns = quick ? 5_000 : 20_000;
var warmUpSettle = TimeSpan.FromSeconds(3);
var only = Array.IndexOf(args, "--only") is var o and >= 0 ? args[o + 1] : null;
bool Run(string workload) => only is null || only == workload;
// Every system first runs unmeasured warm-up batches in the same process, so the figures are of a warmed-up engine
// (the runtime's tiered JIT has compiled the hot paths), not of its first seconds.
await Throughput(null, 0, warmUpRuns);
await Throughput(null, 1, warmUpRuns / 4);
await Task.Delay(warmUpSettle); // the background tier-1 compiles of the hot path finish
if (Run("throughput_nostep")) await Throughput("throughput_nostep", steps: 0, n: quick ? 5_000 : 20_000);
if (Run("throughput_1step")) await Throughput("throughput_1step", steps: 1, n: quick ? 5_000 : 20_000);
if (Run("latency")) await Latency(rate: 500, seconds: quick ? 3 : 10);
if (Run("ten_steps")) await TenSteps(n: quick ? 500 : 2_000);
if (Run("children")) await Children(parents: quick ? 50 : 200);
if (Run("memory")) await Memory(inFlight: quick ? 2_000 : 10_000);

// n runs emitted in bulk, then one worker started; printed under name (null: a warm-up, not printed).
async Task Throughput(string? name, int steps, int n)
{
    var prefix = Prefix();
    var wf = Workflows.Define("noop", async ctx =>
    {
        for (var i = 0; i < steps; i++) await ctx.Step.RunAsync($"s{i}", ct => Task.FromResult(i));
        return null;
    }, new WorkflowOptions { MaxConcurrency = 100_000 });
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
    await (await RedflowWorker.StartAsync(Options(prefix, [wf], 1))).StopAsync(); // registers the workflow
    for (var b = 0; b < n; b += 1000)
        await Task.WhenAll(Enumerable.Range(b, Math.Min(1000, n - b)).Select(_ => client.EmitWorkflowAsync("noop", null)));
    var before = await RedisSample();
    var (cpu, allocated) = (Process.GetCurrentProcess().TotalProcessorTime, GC.GetTotalAllocatedBytes());
    var sw = Stopwatch.StartNew();
    await using var worker = await RedflowWorker.StartAsync(Options(prefix, [wf], 64));
    await WaitFor(prefix, "noop", "succeeded", n);
    var allocatedKb = (GC.GetTotalAllocatedBytes() - allocated) / 1024.0 / n;
    var el = sw.Elapsed;
    var workerUs = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMicroseconds / n;
    var after = await RedisSample();
    if (name is null) return;
    Print(name, ("runs_per_s", n / el.TotalSeconds), ("runs", n), ("round_trips", (after.ScriptCalls - before.ScriptCalls) / (double)n + 1), // + the emit
        ("worker_cpu_us", workerUs), ("worker_alloc_kb", allocatedKb), ("redis_cpu_us", (after.CpuSeconds - before.CpuSeconds) * 1e6 / n),
        ("redis_commands", (after.Commands - before.Commands) / (double)n), ("redis_script_us", (after.ScriptMicros - before.ScriptMicros) / n));
}

async Task Latency(int rate, int seconds)
{
    var prefix = Prefix();
    var wf = Workflows.Define("ping", async ctx => await ctx.Step.RunAsync("one", ct => Task.FromResult(1)), new WorkflowOptions { MaxConcurrency = 10_000 });
    await using var worker = await RedflowWorker.StartAsync(Options(prefix, [wf], 64));
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
    for (var i = 0; i < 200; i++) await (await client.EmitWorkflowAsync("ping", null)).ResultAsync(TimeSpan.FromSeconds(30)); // warm up
    var samples = new ConcurrentBag<double>();
    var total = rate * seconds;
    var start = Stopwatch.GetTimestamp();
    var tasks = new List<Task>(total);
    // Paced without spinning: every millisecond tick, emit the runs that are due by now.
    while (tasks.Count < total)
    {
        var due = Math.Min(total, (int)(Stopwatch.GetElapsedTime(start).TotalSeconds * rate) + 1);
        while (tasks.Count < due)
            tasks.Add(Task.Run(async () =>
            {
                var t0 = Stopwatch.GetTimestamp();
                await (await client.EmitWorkflowAsync("ping", null)).ResultAsync(TimeSpan.FromSeconds(30));
                samples.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }));
        await Task.Delay(1);
    }
    await Task.WhenAll(tasks);
    var sorted = samples.Order().ToArray();
    Print("latency", ("rate", rate), ("p50_ms", sorted[sorted.Length / 2]), ("p99_ms", sorted[(int)(sorted.Length * 0.99)]), ("runs", sorted.Length));
}

async Task TenSteps(int n)
{
    var prefix = Prefix();
    var wf = Workflows.Define("ten", async ctx =>
    {
        for (var i = 0; i < 10; i++) await ctx.Step.RunAsync($"s{i}", ct => Task.FromResult(i));
        return null;
    }, new WorkflowOptions { MaxConcurrency = 100_000 });
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
    await using var worker = await RedflowWorker.StartAsync(Options(prefix, [wf], 64));
    var sw = Stopwatch.StartNew();
    for (var b = 0; b < n; b += 500)
        await Task.WhenAll(Enumerable.Range(b, Math.Min(500, n - b)).Select(_ => client.EmitWorkflowAsync("ten", null)));
    await WaitFor(prefix, "ten", "succeeded", n);
    Print("ten_steps", ("steps_per_s", n * 10 / sw.Elapsed.TotalSeconds), ("runs", n));
}

async Task Children(int parents)
{
    var prefix = Prefix();
    var child = Workflows.Define("child", async ctx => 1, new WorkflowOptions { MaxConcurrency = 100_000 });
    var parent = Workflows.Define("parent", async ctx =>
    {
        var sum = 0;
        for (var i = 0; i < 10; i++) sum += await ctx.Step.RunWorkflowAsync<int>($"c{i}", "child", null);
        return sum;
    }, new WorkflowOptions { MaxConcurrency = 100_000 });
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
    await using var worker = await RedflowWorker.StartAsync(Options(prefix, [parent, child], 64));
    var sw = Stopwatch.StartNew();
    var handles = await Task.WhenAll(Enumerable.Range(0, parents).Select(_ => client.EmitWorkflowAsync("parent", null)));
    foreach (var h in handles) await h.ResultAsync(TimeSpan.FromMinutes(5));
    Print("children", ("parents_per_s", parents / sw.Elapsed.TotalSeconds), ("runs_per_s", parents * 11 / sw.Elapsed.TotalSeconds), ("parents", parents));
}

async Task Memory(int inFlight)
{
    var prefix = Prefix();
    var release = new TaskCompletionSource();
    var wf = Workflows.Define("hold", async ctx => await ctx.Step.RunAsync("hold", async ct => { await release.Task; return 1; }),
        new WorkflowOptions { MaxConcurrency = 1_000_000 });
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
    GC.Collect();
    var baseline = Process.GetCurrentProcess().WorkingSet64;
    await using var worker = await RedflowWorker.StartAsync(Options(prefix, [wf], inFlight) with { Lease = TimeSpan.FromSeconds(60) });
    for (var b = 0; b < inFlight; b += 1000)
        await Task.WhenAll(Enumerable.Range(b, Math.Min(1000, inFlight - b)).Select(_ => client.EmitWorkflowAsync("hold", null)));
    var peak = 0L;
    while (await db.SetLengthAsync($"{{{prefix}}}:running:hold") < inFlight)
    {
        peak = Math.Max(peak, Process.GetCurrentProcess().WorkingSet64);
        await Task.Delay(100);
    }
    for (var i = 0; i < 20; i++) { peak = Math.Max(peak, Process.GetCurrentProcess().WorkingSet64); await Task.Delay(100); }
    var heap = GC.GetTotalMemory(forceFullCollection: true);
    release.SetResult();
    await WaitFor(prefix, "hold", "succeeded", inFlight);
    Print("memory", ("runs_in_flight", inFlight), ("peak_working_set_mb", peak / 1e6), ("baseline_mb", baseline / 1e6), ("heap_mb", heap / 1e6));
}

StartWorkerOptions Options(string prefix, WorkflowDefinition[] workflows, int concurrency) =>
    new() { Url = url, Prefix = prefix, Workflows = workflows, Concurrency = concurrency, App = "bench" };

async Task WaitFor(string prefix, string workflow, string status, int n)
{
    while (await db.SortedSetLengthAsync($"{{{prefix}}}:wfstatus:{status}:{workflow}") < n) await Task.Delay(5);
}

// Redis's counters, read before and after a workload: script calls and their time (EVALSHA/EVAL), every command
// it ran (including those inside scripts), and its own CPU (user + system), to tell a saturated server from a busy
// worker. A commandstats line reads "cmdstat_<name>: calls=N,usec=U,...".
async Task<(long ScriptCalls, double ScriptMicros, long Commands, double CpuSeconds)> RedisSample()
{
    static double Field(string stat, int i) => double.Parse(stat.Split(',')[i].Split('=')[1], System.Globalization.CultureInfo.InvariantCulture);
    var stats = (await server.InfoAsync("commandstats")).SelectMany(g => g).Where(kv => kv.Key != "cmdstat_info").ToList();
    var scripts = stats.Where(kv => kv.Key is "cmdstat_evalsha" or "cmdstat_eval").ToList();
    var cpu = (await server.InfoAsync("cpu")).SelectMany(g => g).Where(kv => kv.Key is "used_cpu_sys" or "used_cpu_user")
        .Sum(kv => double.Parse(kv.Value, System.Globalization.CultureInfo.InvariantCulture));
    return ((long)scripts.Sum(kv => Field(kv.Value, 0)), scripts.Sum(kv => Field(kv.Value, 1)), (long)stats.Sum(kv => Field(kv.Value, 0)), cpu);
}

static string Prefix() => "b" + Guid.NewGuid().ToString("N")[..8];

static void Print(string workload, params (string Key, double Value)[] values) =>
    Console.WriteLine($"redflow {workload} " + string.Join(" ", values.Select(v => $"{v.Key}={v.Value:0.##}")));
