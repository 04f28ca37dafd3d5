// Hangfire side of the benchmark (Hangfire.Core + Hangfire.Redis.StackExchange), in-process server.
// Usage: Hangfire.Bench <host:port> [--quick]. Prints "hangfire <workload> key=value ..." lines.
// Tuning: 64 workers (as Redflow's concurrency), FetchTimeout 50 ms (the default polls every 3 s when idle),
// no transactions in the storage's fetch path beyond its defaults, and the job is a no-op.
using System.Collections.Concurrent;
using System.Diagnostics;
using Hangfire;
using Hangfire.Redis.StackExchange;
using StackExchange.Redis;

var endpoint = args[0];
var quick = args.Contains("--quick");
var mux = ConnectionMultiplexer.Connect(endpoint + ",allowAdmin=true");
var server = mux.GetServers()[0];
GlobalConfiguration.Configuration
    .UseRedisStorage(mux, new RedisStorageOptions { Prefix = "{hangfire-bench}:", FetchTimeout = TimeSpan.FromMilliseconds(50) })
    .UseSimpleAssemblyNameTypeSerializer()
    .UseRecommendedSerializerSettings();
GlobalConfiguration.Configuration.UseLogProvider(new NoLogs());

var n = quick ? 5_000 : 20_000;
var client = new BackgroundJobClient();
// Like the other systems, an unmeasured warm-up batch first (JIT warm), then the measured one.
var warmUp = quick ? 5_000 : 20_000;
for (var i = 0; i < warmUp; i++) client.Enqueue(() => Jobs.Noop(0));
using (new BackgroundJobServer(new BackgroundJobServerOptions { WorkerCount = 64, SchedulePollingInterval = TimeSpan.FromMilliseconds(100) }))
    while (Jobs.Done < warmUp) await Task.Delay(5);
Jobs.Done = 0;
for (var i = 0; i < n; i++) client.Enqueue(() => Jobs.Noop(0));
var before = Calls();
var sw = Stopwatch.StartNew();
using (var bjs = new BackgroundJobServer(new BackgroundJobServerOptions { WorkerCount = 64, SchedulePollingInterval = TimeSpan.FromMilliseconds(100) }))
{
    while (Jobs.Done < n) await Task.Delay(5);
    var el = sw.Elapsed;
    Console.WriteLine($"hangfire throughput_nostep runs_per_s={n / el.TotalSeconds:0.##} runs={n} round_trips={(Calls() - before) / (double)n + 1:0.##}");

    // Latency: 500 jobs/s, enqueue to the job's end (recorded in-process by the job itself).
    var rate = 500;
    var total = rate * (quick ? 3 : 10);
    var start = Stopwatch.GetTimestamp();
    var emitted = 0;
    while (emitted < total)
    {
        var due = Math.Min(total, (int)(Stopwatch.GetElapsedTime(start).TotalSeconds * rate) + 1);
        for (; emitted < due; emitted++)
        {
            var id = emitted + 1;
            Jobs.Enqueued[id] = Stopwatch.GetTimestamp();
            client.Enqueue(() => Jobs.Noop(id));
        }
        await Task.Delay(1);
    }
    while (Jobs.Latencies.Count < total) await Task.Delay(5);
    var sorted = Jobs.Latencies.Order().ToArray();
    Console.WriteLine($"hangfire latency rate={rate} p50_ms={sorted[sorted.Length / 2]:0.##} p99_ms={sorted[(int)(sorted.Length * 0.99)]:0.##} runs={sorted.Length}");
}

long Calls() => server.Info("commandstats").SelectMany(g => g).Where(kv => kv.Key.StartsWith("cmdstat_", StringComparison.Ordinal) && kv.Key is not "cmdstat_info")
    .Sum(kv => long.Parse(kv.Value.Split(',')[0].Split('=')[1]));

public static class Jobs
{
    public static int Done;
    public static readonly ConcurrentDictionary<int, long> Enqueued = new();
    public static readonly ConcurrentBag<double> Latencies = [];

    public static void Noop(int id)
    {
        if (id == 0) Interlocked.Increment(ref Done);
        else if (Enqueued.TryGetValue(id, out var t0)) Latencies.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
    }
}

internal sealed class NoLogs : Hangfire.Logging.ILogProvider
{
    public Hangfire.Logging.ILog GetLogger(string name) => new Silent();

    private sealed class Silent : Hangfire.Logging.ILog
    {
        public bool Log(Hangfire.Logging.LogLevel logLevel, Func<string>? messageFunc, Exception? exception = null) => false;
    }
}
