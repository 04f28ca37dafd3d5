// Scale-out by namespaces on a Redis Cluster: the same load under one prefix (one slot, one primary) and under
// several prefixes (one per primary). Each prefix gets its own worker and client in this process.
// Usage: dotnet run -c Release -- <StackExchange.Redis configuration string> <prefixes> <runs> [waitForReplicas]
using System.Diagnostics;
using Redflow;
using StackExchange.Redis;

var url = args[0];
var prefixCount = int.Parse(args[1]);
var total = int.Parse(args[2]);
var waitForReplicas = args.Length > 3 ? int.Parse(args[3]) : 0;

using var mux = await ConnectionMultiplexer.ConnectAsync(url);
var prefixes = new List<string>();
var owners = new HashSet<string>();
var cluster = mux.GetServers().Length > 1;
while (prefixes.Count < prefixCount)
{
    var p = "b" + Guid.NewGuid().ToString("N")[..8];
    var owner = mux.GetServer((RedisKey)("{" + p + "}:")).EndPoint!.ToString()!;
    // Spread prefixes over distinct primaries while there are primaries left.
    if (!cluster || owners.Count >= mux.GetServers().Count(s => !s.IsReplica) || owners.Add(owner)) prefixes.Add(p);
}

var step = Workflows.Define("bench-step", async ctx => await ctx.Step.RunAsync("s", ct => Task.FromResult(1)),
    new WorkflowOptions { MaxConcurrency = 1000 });
var workers = new List<RedflowWorker>();
var clients = new List<IRedflowClient>();
foreach (var p in prefixes)
{
    workers.Add(await RedflowWorker.StartAsync(new StartWorkerOptions
    {
        Url = url, Prefix = p, Workflows = [step], Concurrency = 64, WaitForReplicas = waitForReplicas,
    }));
    clients.Add(RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = p, WaitForReplicas = waitForReplicas }));
}

var db = mux.GetDatabase();
var per = total / prefixes.Count;
var clock = Stopwatch.StartNew();
var emits = clients.Select(async client =>
{
    using var gate = new SemaphoreSlim(64);
    var tasks = Enumerable.Range(0, per).Select(async _ =>
    {
        await gate.WaitAsync();
        try { await client.EmitWorkflowAsync("bench-step", null); }
        finally { gate.Release(); }
    });
    await Task.WhenAll(tasks);
}).ToList();
await Task.WhenAll(emits);
var emitted = clock.Elapsed;
while (true)
{
    long done = 0;
    foreach (var p in prefixes) done += await db.SortedSetLengthAsync("{" + p + "}:wfstatus:succeeded:bench-step");
    if (done >= per * prefixes.Count) break;
    await Task.Delay(20);
}
var elapsed = clock.Elapsed;
var runs = per * prefixes.Count;
Console.WriteLine($"prefixes={prefixes.Count} primaries={prefixes.Select(p => mux.GetServer((RedisKey)("{" + p + "}:")).EndPoint!.ToString()).Distinct().Count()} " +
    $"wait={waitForReplicas} runs={runs} emit_s={emitted.TotalSeconds:0.00} total_s={elapsed.TotalSeconds:0.00} runs_per_s={runs / elapsed.TotalSeconds:0}");
foreach (var w in workers) await w.StopAsync();
foreach (var c in clients) await c.DisposeAsync();
foreach (var p in prefixes)
    foreach (var server in mux.GetServers().Where(s => !s.IsReplica))
        await foreach (var key in server.KeysAsync(pattern: "{" + p + "}:*")) await db.KeyDeleteAsync(key);
