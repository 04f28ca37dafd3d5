// Redflow cluster sample: three worker nodes form an Akka.Cluster on loopback; the reaper and the cron actor run
// once per cluster as singletons on the oldest node. Modes:
//   node <1|2|3>      run a worker node (Akka.Remote port 4050 + n; node 1 is the seed)
//   emit <count>      emit runs of "cluster-work" and wait for all results
//   report            print the cron ticks and the run counts
// Redis: $REDIS_URL (default redis://localhost:6379). run-cluster.sh drives the whole demo.
using Akka.Hosting;
using Microsoft.Extensions.Hosting;
using Redflow;

var url = Environment.GetEnvironmentVariable("REDIS_URL") ?? "redis://localhost:6379";
const string Prefix = "cluster-sample";

var work = Workflows.Define<Job, string>("cluster-work", async ctx =>
{
    await ctx.Step.RunAsync("prepare", ct => Task.FromResult(ctx.Input.Id));
    await ctx.Step.RunAsync("slow", async ct => { await Task.Delay(1500, ct); return 1; });
    return $"{ctx.Input.Id} done on {Environment.ProcessId}";
}, new WorkflowOptions { MaxConcurrency = 20 });

var tick = Workflows.Define("cluster-tick", async ctx => null,
    new WorkflowOptions { MaxConcurrency = 5, Cron = [new CronTrigger("*/2 * * * * *") { Id = "every-2s" }] });

switch (args.FirstOrDefault())
{
    case "node":
        await RunNodeAsync(int.Parse(args[1]));
        return 0;
    case "emit":
        return await EmitAsync(int.Parse(args[1]));
    case "report":
        return await ReportAsync();
    default:
        Console.Error.WriteLine("usage: node <1|2|3> | emit <count> | report");
        return 2;
}

async Task RunNodeAsync(int n)
{
    var builder = Host.CreateApplicationBuilder();
    builder.Services.AddAkka("redflow-cluster", (akka, sp) => akka
        // Remoting and clustering in HOCON (Akka.Hosting's AddHocon): the engine needs no Akka.Cluster.Hosting.
        // Keep the majority side when the membership is stable: a crashed node is downed, its singletons move.
        // Failure detection tuned for a hand-over in about 5-10 s after a crash (Akka's defaults take about 50 s).
        .AddHocon($$"""
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
            akka.remote.dot-netty.tcp.port = {{4050 + n}}
            akka.cluster.seed-nodes = ["akka.tcp://redflow-cluster@127.0.0.1:4051"]
            akka.cluster.downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
            akka.cluster.split-brain-resolver.active-strategy = keep-majority
            akka.cluster.split-brain-resolver.stable-after = 2s
            akka.cluster.failure-detector.heartbeat-interval = 500ms
            akka.cluster.failure-detector.acceptable-heartbeat-pause = 2s
            akka.loglevel = WARNING
            """, HoconAddMode.Prepend)
        .WithRedflowWorker(new StartWorkerOptions
        {
            App = $"cluster-node-{n}",
            Url = url,
            Prefix = Prefix,
            Workflows = [work, tick],
            Concurrency = 4,
            Lease = TimeSpan.FromSeconds(3),
        }));
    using var host = builder.Build();
    await host.StartAsync();
    Console.WriteLine($"node {n} ready (pid {Environment.ProcessId})");
    await host.WaitForShutdownAsync();
}

async Task<int> EmitAsync(int count)
{
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = Prefix });
    var handles = new List<RunHandle<string>>();
    for (var i = 0; i < count; i++)
        handles.Add(await client.EmitWorkflowAsync(work, new Job($"job-{i}")));
    Console.WriteLine($"emitted {count} runs");
    var done = 0;
    foreach (var handle in handles)
    {
        var result = await handle.ResultAsync(TimeSpan.FromMinutes(2));
        var run = await client.GetRunAsync(handle.RunId);
        Console.WriteLine($"  {result} (resumes: {run!.Resumes})");
        done++;
    }
    Console.WriteLine($"all {done} runs succeeded");
    return done == count ? 0 : 1;
}

async Task<int> ReportAsync()
{
    await using var client = RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = Prefix });
    var ticks = await client.ListRunsAsync(new ListRunsParams { Workflow = "cluster-tick", Limit = 1000 });
    var distinct = ticks.Select(r => r.IdempotencyKey).Distinct().Count();
    Console.WriteLine($"cron ticks fired: {ticks.Count}, distinct instants: {distinct} ({(distinct == ticks.Count ? "once per tick" : "DUPLICATES")})");
    foreach (var r in ticks.OrderBy(r => r.CreatedAt).TakeLast(8))
        Console.WriteLine($"  tick at {r.CreatedAt:HH:mm:ss.fff} -> {r.Status}");
    var stats = await client.GetStatsAsync();
    Console.WriteLine("runs by status: " + string.Join(", ", stats.RunCounts.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key}={kv.Value}")));
    Console.WriteLine("live workers: " + string.Join(", ", stats.Workers.Select(w => w.App)));
    return distinct == ticks.Count ? 0 : 1;
}

public sealed record Job(string Id);
