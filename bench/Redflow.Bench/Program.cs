// Redflow benchmark: the workloads of docs/benchmarks.md against one Redis (bench/run.sh starts a fresh one).
// Usage: Redflow.Bench <redis-url> [--quick] [--only <workload>] [--waits | --keys]. Prints one machine-readable line per workload:
//   redflow <workload> key=value ...
// --waits runs the durable-wait workloads instead (waits_memory, sleep_lateness, signal_resume), each beside the
// single-step throughput measured in the same process, just before and just after.
// --keys runs flow control's workloads instead: throughput_1step (no keys) and throughput_1step_keys (1,000 distinct
// flow-control keys, one per emit round-robin, MaxConcurrencyPerKey = 1); bench/run.sh --keys runs each in a process
// and Redis of its own, alternately.
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
var waits = args.Contains("--waits");
var keyed = args.Contains("--keys");
var commands = keyed || args.Contains("--commands"); // print "<workload>_commands" lines: INFO commandstats per run
const int FlowKeys = 1_000;
bool Run(string workload) => only is null || only == workload;
// Every system first runs unmeasured warm-up batches in the same process, so the figures are of a warmed-up engine
// (the runtime's tiered JIT has compiled the hot paths), not of its first seconds.
await Throughput(null, 0, warmUpRuns);
await Throughput(null, 1, warmUpRuns / 4);
if (keyed)
{
    await Throughput(null, 1, warmUpRuns / 4, keys: FlowKeys); // the keyed emit, claim and release paths compiled too
    await Task.Delay(warmUpSettle);
    if (Run("throughput_1step")) await Throughput("throughput_1step", steps: 1, n: quick ? 5_000 : 20_000);
    if (Run("throughput_1step_keys")) await Throughput("throughput_1step_keys", steps: 1, n: quick ? 5_000 : 20_000, keys: FlowKeys);
    return;
}
if (waits)
{
    await SignalResume(null, 1_000); // the wait, suspend, signal and resume paths compiled too
    await Task.Delay(warmUpSettle);
    var n = quick ? 2_000 : 10_000;
    if (Run("signal_resume"))
    {
        await Throughput("throughput_1step", steps: 1, n: quick ? 5_000 : 20_000);
        await SignalResume("signal_resume", n);
        await Throughput("throughput_1step_after", steps: 1, n: quick ? 5_000 : 20_000);
    }
    if (Run("sleep_lateness")) await SleepLateness(n, lead: TimeSpan.FromSeconds(quick ? 8 : 20));
    if (Run("waits_memory")) await WaitsMemory(quick ? 10_000 : 100_000);
    return;
}
await Task.Delay(warmUpSettle); // the background tier-1 compiles of the hot path finish
if (Run("throughput_nostep")) await Throughput("throughput_nostep", steps: 0, n: quick ? 5_000 : 20_000);
if (Run("throughput_1step")) await Throughput("throughput_1step", steps: 1, n: quick ? 5_000 : 20_000);
if (Run("latency")) await Latency(rate: 500, seconds: quick ? 3 : 10);
if (Run("ten_steps")) await TenSteps(n: quick ? 500 : 2_000);
if (Run("children")) await Children(parents: quick ? 50 : 200);
if (Run("memory")) await Memory(inFlight: quick ? 2_000 : 10_000);

// n runs emitted in bulk, then one worker started; printed under name (null: a warm-up, not printed). keys > 0: each
// run gets a flow-control key, round-robin over that many ("k0", "k1", ...), on a workflow with MaxConcurrencyPerKey = 1
// (MaxConcurrency as high as without keys, so only the per-key cap can bind).
async Task Throughput(string? name, int steps, int n, int keys = 0)
{
    var prefix = Prefix();
    var wf = Workflows.Define("noop", async ctx =>
    {
        for (var i = 0; i < steps; i++) await ctx.Step.RunAsync($"s{i}", ct => Task.FromResult(i));
        return null;
    }, new WorkflowOptions { MaxConcurrency = 100_000, MaxConcurrencyPerKey = keys > 0 ? 1 : null });
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
    await (await RedflowWorker.StartAsync(Options(prefix, [wf], 1))).StopAsync(); // registers the workflow
    var beforeEmit = await RedisSample();
    var emitting = Stopwatch.StartNew();
    for (var b = 0; b < n; b += 1000)
        await Task.WhenAll(Enumerable.Range(b, Math.Min(1000, n - b)).Select(i =>
            client.EmitWorkflowAsync("noop", null, keys > 0 ? new EmitOptions { Key = $"k{i % keys}" } : null)));
    var emitted = emitting.Elapsed;
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
    Print(name, ("runs_per_s", n / el.TotalSeconds), ("runs", n), ("keys", keys), ("round_trips", (after.ScriptCalls - before.ScriptCalls) / (double)n + 1), // + the emit
        ("worker_cpu_us", workerUs), ("worker_alloc_kb", allocatedKb), ("redis_cpu_us", (after.CpuSeconds - before.CpuSeconds) * 1e6 / n),
        ("redis_commands", (after.Commands - before.Commands) / (double)n), ("redis_script_us", (after.ScriptMicros - before.ScriptMicros) / n),
        ("emit_per_s", n / emitted.TotalSeconds), ("emit_redis_commands", (before.Commands - beforeEmit.Commands) / (double)n)); // the emit, untimed above
    if (commands) // which commands, per run (INFO commandstats): where a run's commands go
        Print(name + "_commands", [.. after.PerCommand.Select(c => (c.Key, (c.Value - before.PerCommand.GetValueOrDefault(c.Key)) / (double)n))
            .Where(c => c.Item2 >= 0.005).OrderByDescending(c => c.Item2)]);
}

async Task Latency(int rate, int seconds)
{
    var prefix = Prefix();
    var wf = Workflows.Define("ping", async ctx => await ctx.Step.RunAsync("one", ct => Task.FromResult(1)), new WorkflowOptions { MaxConcurrency = 10_000 });
    await using var worker = await RedflowWorker.StartAsync(Options(prefix, [wf], 64));
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
    for (var i = 0; i < 200; i++) await (await client.EmitWorkflowAsync("ping", null)).ResultAsync(TimeSpan.FromSeconds(30)); // warm up
    var samples = new ConcurrentBag<double>();
    var emitSamples = new ConcurrentBag<double>(); // emit only: until EmitWorkflowAsync returns (the run is in Redis)
    var runIds = new ConcurrentBag<string>();
    var resultAtMs = new ConcurrentDictionary<string, long>(); // wall clock (same machine as Redis) when the result arrived
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
                var handle = await client.EmitWorkflowAsync("ping", null);
                emitSamples.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                runIds.Add(handle.RunId);
                await handle.ResultAsync(TimeSpan.FromSeconds(30));
                resultAtMs[handle.RunId] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                samples.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }));
        await Task.Delay(1);
    }
    await Task.WhenAll(tasks);
    var sorted = samples.Order().ToArray();
    var emitSorted = emitSamples.Order().ToArray();
    // Where the time goes, from the runs' records (Redis clock, ms): queued (created -> started: one attempt each, so its
    // lease), running (started -> finished) and told (finished -> the result returned, on this machine's wall clock).
    var legs = await Task.WhenAll(runIds.Select(async id =>
    {
        var run = (await client.GetRunAsync(id))!;
        var (created, started, finished) = (run.CreatedAt.ToUnixTimeMilliseconds(), run.StartedAt!.Value.ToUnixTimeMilliseconds(), run.FinishedAt!.Value.ToUnixTimeMilliseconds());
        return ((double)(started - created), (double)(finished - started), (double)(resultAtMs[id] - finished));
    }));
    var queued = legs.Select(l => l.Item1).Order().ToArray();
    var running = legs.Select(l => l.Item2).Order().ToArray();
    var told = legs.Select(l => l.Item3).Order().ToArray(); // finished in Redis -> the result in the caller's hands
    Print("latency", ("rate", rate), ("p50_ms", sorted[sorted.Length / 2]), ("p99_ms", sorted[(int)(sorted.Length * 0.99)]),
        ("p90_ms", sorted[(int)(sorted.Length * 0.90)]), ("max_ms", sorted[^1]), ("runs", sorted.Length),
        ("emit_p50_ms", emitSorted[emitSorted.Length / 2]), ("emit_p99_ms", emitSorted[(int)(emitSorted.Length * 0.99)]),
        ("queued_p50_ms", queued[queued.Length / 2]), ("queued_p99_ms", queued[(int)(queued.Length * 0.99)]),
        ("running_p50_ms", running[running.Length / 2]), ("running_p99_ms", running[(int)(running.Length * 0.99)]),
        ("told_p50_ms", told[told.Length / 2]), ("told_p99_ms", told[(int)(told.Length * 0.99)]));
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

// n runs that wait on a signal; once all are Waiting, one signal each (64 in flight); resumed runs/s from the
// first signal until the last run succeeded. Each run: claim, wait (suspends), then signal, claim, complete.
async Task SignalResume(string? name, int n)
{
    var prefix = Prefix();
    var wf = Workflows.Define("sig", async ctx => await ctx.Step.WaitForSignalAsync<string>("w", "go"),
        new WorkflowOptions { MaxConcurrency = 100_000 });
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
    await using var worker = await RedflowWorker.StartAsync(Options(prefix, [wf], 64));
    var sw = Stopwatch.StartNew();
    var ids = await EmitMany(client, "sig", n);
    await WaitFor(prefix, "sig", "waiting", n);
    var toWaiting = sw.Elapsed;
    var before = await RedisSample();
    sw.Restart();
    var next = -1;
    var undelivered = 0;
    await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
    {
        for (var i = Interlocked.Increment(ref next); i < n; i = Interlocked.Increment(ref next))
            if (!await client.SignalRunAsync(ids[i], "go", "ok")) Interlocked.Increment(ref undelivered);
    }));
    var sent = sw.Elapsed;
    await WaitFor(prefix, "sig", "succeeded", n);
    var el = sw.Elapsed;
    var after = await RedisSample();
    if (name is null) return;
    Print(name, ("runs_per_s", n / el.TotalSeconds), ("runs", n), ("signals_sent_per_s", n / sent.TotalSeconds), ("undelivered", undelivered),
        ("to_waiting_s", toWaiting.TotalSeconds), ("round_trips", (after.ScriptCalls - before.ScriptCalls) / (double)n),
        ("redis_cpu_us", (after.CpuSeconds - before.CpuSeconds) * 1e6 / n), ("redis_commands", (after.Commands - before.Commands) / (double)n));
}

// n runs sleeping until the same instant T (lead ahead of the Redis clock at the start); once all are Waiting, the
// lateness of each run is when its step after the sleep ran (StepRecord.StartedAt, Redis clock) minus T; woken_* is when
// the wake-up requeued it (RunRecord.AvailableAt) minus T.
async Task SleepLateness(int n, TimeSpan lead)
{
    var prefix = Prefix();
    var due = new DateTimeOffset(await server.TimeAsync(), TimeSpan.Zero) + lead;
    var wf = Workflows.Define("nap", async ctx =>
    {
        await ctx.Step.SleepUntilAsync("s", due);
        return await ctx.Step.RunAsync("after", ct => Task.FromResult(1));
    }, new WorkflowOptions { MaxConcurrency = 100_000 });
    var options = Options(prefix, [wf], 64);
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
    await using var worker = await RedflowWorker.StartAsync(options);
    var ids = await EmitMany(client, "nap", n);
    await WaitFor(prefix, "nap", "waiting", n, until: due);
    var waitingAtDue = await db.SortedSetLengthAsync($"{{{prefix}}}:wfstatus:waiting:nap");
    var margin = due - new DateTimeOffset(await server.TimeAsync(), TimeSpan.Zero);
    await WaitFor(prefix, "nap", "succeeded", n);
    var stepLate = new double[n];
    var finishLate = new double[n];
    var wokenLate = new double[n]; // when the wake-up requeued it (its available_at), minus T
    for (var b = 0; b < n; b += 500)
        await Task.WhenAll(Enumerable.Range(b, Math.Min(500, n - b)).Select(async i =>
        {
            var steps = await client.GetRunStepsAsync(ids[i]);
            stepLate[i] = (steps.Single(s => s.Name == "after").StartedAt!.Value - due).TotalMilliseconds;
            var run = (await client.GetRunAsync(ids[i]))!;
            finishLate[i] = (run.FinishedAt!.Value - due).TotalMilliseconds;
            wokenLate[i] = (run.AvailableAt!.Value - due).TotalMilliseconds;
        }));
    Array.Sort(stepLate);
    Array.Sort(finishLate);
    Array.Sort(wokenLate);
    double P(double[] a, double q) => a[Math.Min(a.Length - 1, (int)(a.Length * q))];
    Print("sleep_lateness", ("runs", n), ("p50_ms", P(stepLate, 0.5)), ("p99_ms", P(stepLate, 0.99)), ("max_ms", stepLate[^1]),
        ("min_ms", stepLate[0]), ("within_2s", stepLate.Count(x => x <= 2000)), ("finish_p50_ms", P(finishLate, 0.5)),
        ("finish_p99_ms", P(finishLate, 0.99)), ("woken_p50_ms", P(wokenLate, 0.5)), ("woken_p99_ms", P(wokenLate, 0.99)),
        ("woken_max_ms", wokenLate[^1]), ("waiting_at_due", waitingAtDue), ("margin_s", margin.TotalSeconds),
        ("reaper_interval_ms", options.ReaperInterval.TotalMilliseconds));
}

// n runs that record one step then wait on a signal, and n that record one step then sleep an hour: Redis
// used_memory before the emit and once all are Waiting, per run. Left waiting, then the database is flushed.
async Task WaitsMemory(int n)
{
    var values = new List<(string, double)> { ("runs", n) };
    foreach (var kind in new[] { "signal", "sleep" })
    {
        var prefix = Prefix();
        var wf = Workflows.Define("idle", async ctx =>
        {
            await ctx.Step.RunAsync("one", ct => Task.FromResult(1));
            if (kind == "signal") return await ctx.Step.WaitForSignalAsync<string>("w", "go");
            await ctx.Step.SleepAsync("s", TimeSpan.FromHours(1));
            return null;
        }, new WorkflowOptions { MaxConcurrency = 1_000_000 });
        await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix });
        await using (var worker = await RedflowWorker.StartAsync(Options(prefix, [wf], 64)))
        {
            await client.GetStatsAsync(); // the client's connection and scripts in place before the first sample
            var before = await UsedMemory();
            var sw = Stopwatch.StartNew();
            await EmitMany(client, "idle", n);
            await WaitFor(prefix, "idle", "waiting", n);
            var el = sw.Elapsed;
            await Task.Delay(1000);
            var after = await UsedMemory();
            values.Add(($"{kind}_bytes_per_run", (after - before) / (double)n));
            values.Add(($"{kind}_to_waiting_runs_per_s", n / el.TotalSeconds));
        }
    }
    await server.FlushAllDatabasesAsync();
    Print("waits_memory", [.. values]);
}

async Task<long> UsedMemory() =>
    long.Parse((await server.InfoAsync("memory")).SelectMany(g => g).First(kv => kv.Key == "used_memory").Value);

// n runs emitted, 1,000 at a time; their ids in emit order.
static async Task<string[]> EmitMany(IRedflowClient client, string workflow, int n)
{
    var ids = new List<string>(n);
    for (var b = 0; b < n; b += 1000)
        ids.AddRange((await Task.WhenAll(Enumerable.Range(b, Math.Min(1000, n - b)).Select(_ => client.EmitWorkflowAsync(workflow, null)))).Select(h => h.RunId));
    return [.. ids];
}

StartWorkerOptions Options(string prefix, WorkflowDefinition[] workflows, int concurrency) =>
    new() { Url = url, Prefix = prefix, Workflows = workflows, Concurrency = concurrency, App = "bench" };

// Until n runs of the workflow have the status (or, given until, the Redis clock passed it).
async Task WaitFor(string prefix, string workflow, string status, int n, DateTimeOffset? until = null)
{
    while (await db.SortedSetLengthAsync($"{{{prefix}}}:wfstatus:{status}:{workflow}") < n)
    {
        if (until is { } u && new DateTimeOffset(await server.TimeAsync(), TimeSpan.Zero) >= u) return;
        await Task.Delay(5);
    }
}

// Redis's counters, read before and after a workload: script calls and their time (EVALSHA/EVAL), every command
// it ran (including those inside scripts), and its own CPU (user + system), to tell a saturated server from a busy
// worker. A commandstats line reads "cmdstat_<name>: calls=N,usec=U,...".
async Task<(long ScriptCalls, double ScriptMicros, long Commands, double CpuSeconds, Dictionary<string, long> PerCommand)> RedisSample()
{
    static double Field(string stat, int i) => double.Parse(stat.Split(',')[i].Split('=')[1], System.Globalization.CultureInfo.InvariantCulture);
    var stats = (await server.InfoAsync("commandstats")).SelectMany(g => g).Where(kv => kv.Key != "cmdstat_info").ToList();
    var scripts = stats.Where(kv => kv.Key is "cmdstat_evalsha" or "cmdstat_eval").ToList();
    var cpu = (await server.InfoAsync("cpu")).SelectMany(g => g).Where(kv => kv.Key is "used_cpu_sys" or "used_cpu_user")
        .Sum(kv => double.Parse(kv.Value, System.Globalization.CultureInfo.InvariantCulture));
    return ((long)scripts.Sum(kv => Field(kv.Value, 0)), scripts.Sum(kv => Field(kv.Value, 1)), (long)stats.Sum(kv => Field(kv.Value, 0)), cpu,
        stats.ToDictionary(kv => kv.Key["cmdstat_".Length..], kv => (long)Field(kv.Value, 0)));
}

static string Prefix() => "b" + Guid.NewGuid().ToString("N")[..8];

static void Print(string workload, params (string Key, double Value)[] values) =>
    Console.WriteLine($"redflow {workload} " + string.Join(" ", values.Select(v => $"{v.Key}={v.Value:0.##}")));
