// The worker process of the fault harness (tests/Redflow.FaultTests). Usage:
//   Redflow.FaultWorker <redis-config> <prefix> <ledger-file> <lease-ms> <concurrency>
// Runs the harness's workflows and writes an independent ledger of what every handler and step body did,
// one line each, flushed to the OS at once (a SIGKILL loses no finished line):
//   <unix-ms> begin <run> - <attempt> <pid> <inv> <token>   a handler invocation began (time of entry); token = the run's fencing
//                                                          token read from Redis right after the claim, when this
//                                                          worker still held it ("?" unknown, "stale" taken already)
//   <unix-ms> start|end|throw <run> <step> <attempt> <pid> <inv> <exec>   a step body began / returned / threw
//   <unix-ms> ack <run> <step> <attempt> <pid> <inv> <exec>   ctx.Step.RunAsync returned to the handler (the step's
//                                                          record was acknowledged or served from the record);
//                                                          exec = the execution whose result was returned
//   <unix-ms> woke <run> <step> <attempt> <pid> <inv> <redis-ms>   a sleep (SleepAsync / SleepUntilAsync) returned to the
//                                                          handler; redis-ms = Redis's TIME read right after ("?" unknown)
//   <unix-ms> took <run> <step> <attempt> <pid> <inv> <id>   a signal wait returned the signal with payload id <id>
// A plan's step may be a wait instead of a RunAsync step: {"wait": "sleep", "ms": N} (SleepAsync N ms),
// {"wait": "until", "at": unix-ms} (SleepUntilAsync) or {"wait": "signal"} (WaitForSignalAsync of signal "go", whose
// payload is {"k": n, "id": "..."}).
// Every step body returns {"exec": <its exec id>, ...}, so the recorded result names the execution that made it,
// and every run's output names the invocation that completed it.
// Prints "ready <node>" once started and "mem <gc-heap-bytes> <working-set-bytes>" every 2 s.
// The kill tests use it too. With REDFLOW_HOLD_STEPS=1, a step whose plan says "hold": true waits in its body until the
// process is killed (elsewhere it runs as its "ms" say); so it does in every workflow that runs plans, "fault-keyed"
// (MaxConcurrencyPerKey = 1, the per-key kill test's) among them. With REDFLOW_TEST_LOG=1 the worker logs (Information and up)
// to stdout, one line an entry, so a test can count them.
using System.Text;
using Microsoft.Extensions.Logging;
using System.Text.Json;
using Redflow;
using StackExchange.Redis;

var config = args[0];
var prefix = args[1];
var ledgerPath = args[2];
var lease = TimeSpan.FromMilliseconds(int.Parse(args[3]));
var concurrency = int.Parse(args[4]);
var pid = Environment.ProcessId;
var holdSteps = Environment.GetEnvironmentVariable("REDFLOW_HOLD_STEPS") == "1";

var ledgerStream = new FileStream(ledgerPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
var ledgerLock = new object();

void Ledger(string kind, string run, string step, int attempt, string inv, string extra, long? ms = null)
{
    var line = Encoding.UTF8.GetBytes($"{ms ?? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()} {kind} {run} {step} {attempt} {pid} {inv} {extra}\n");
    lock (ledgerLock)
    {
        ledgerStream.Write(line);
        ledgerStream.Flush(); // one write(2) per line: in the page cache before the next line, whatever kills us
    }
}

var side = await ConnectionMultiplexer.ConnectAsync(config + ",abortConnect=false,asyncTimeout=1000,syncTimeout=1000,name=fault-side");
var node = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);

async Task<string> ReadTokenAsync(string runId)
{
    try
    {
        var me = await node.Task;
        var v = await side.GetDatabase().HashGetAsync($"{{{prefix}}}:run:{runId}", ["token", "worker", "status"]);
        if (v[0].IsNull) return "?";
        return v[1] == me && v[2] == "running" ? (string)v[0]! : "stale";
    }
    catch (Exception)
    {
        return "?"; // Redis unreachable: this invocation's token stays unknown (the checks skip it)
    }
}

async Task<string> RedisMsAsync()
{
    try
    {
        var t = (RedisResult[])(await side.GetDatabase().ExecuteAsync("TIME"))!;
        return (long.Parse((string)t[0]!) * 1000 + long.Parse((string)t[1]!) / 1000).ToString();
    }
    catch (Exception)
    {
        return "?"; // Redis unreachable: this observation is left out of the checks
    }
}

async Task<object?> RunPlanAsync(WorkflowHandlerContext ctx)
{
    var inv = Guid.NewGuid().ToString("N")[..12];
    var run = ctx.Run.Id;
    var attempt = ctx.Run.Attempt;
    var entered = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(); // before the token read: as close to the claim as the handler gets
    Ledger("begin", run, "-", attempt, inv, await ReadTokenAsync(run), entered);
    var input = ctx.Input;
    var steps = input.GetProperty("steps");
    var poison = input.TryGetProperty("poison", out var p) ? p.GetInt32() : -1;
    var children = input.TryGetProperty("children", out var c) && c.ValueKind == JsonValueKind.Array ? c : default;
    var childAt = steps.GetArrayLength() / 2;
    var execs = new Dictionary<string, string>();
    var i = 0;
    foreach (var step in steps.EnumerateArray())
    {
        if (i == childAt && children.ValueKind == JsonValueKind.Array)
        {
            var k = 0;
            foreach (var child in children.EnumerateArray())
            {
                var name = $"child-{k++}";
                var output = await ctx.Step.RunWorkflowAsync<JsonElement>(name, "fault-child", child);
                execs[name] = output.GetProperty("inv").GetString()!;
            }
        }
        var stepName = $"s{i:00}";
        if (step.TryGetProperty("wait", out var wait))
        {
            switch (wait.GetString())
            {
                case "sleep":
                    await ctx.Step.SleepAsync(stepName, TimeSpan.FromMilliseconds(step.GetProperty("ms").GetInt32()));
                    Ledger("woke", run, stepName, attempt, inv, await RedisMsAsync());
                    break;
                case "until":
                    await ctx.Step.SleepUntilAsync(stepName, DateTimeOffset.FromUnixTimeMilliseconds(step.GetProperty("at").GetInt64()));
                    Ledger("woke", run, stepName, attempt, inv, await RedisMsAsync());
                    break;
                default:
                    var signal = await ctx.Step.WaitForSignalAsync<JsonElement>(stepName, "go");
                    var id = signal.GetProperty("id").GetString()!;
                    Ledger("took", run, stepName, attempt, inv, id);
                    execs[stepName] = id;
                    break;
            }
            i++;
            continue;
        }
        var ms = step.GetProperty("ms").GetInt32();
        var fail = step.GetProperty("fail").GetInt32();
        var hold = holdSteps && step.TryGetProperty("hold", out var h) && h.GetBoolean();
        var isPoison = i == poison;
        var result = await ctx.Step.RunAsync(stepName, async ct =>
        {
            var exec = Guid.NewGuid().ToString("N")[..12];
            Ledger("start", run, stepName, attempt, inv, exec);
            if (isPoison)
            {
                Ledger("throw", run, stepName, attempt, inv, exec);
                throw new NonRetriableException($"poison input at step {stepName}");
            }
            if (attempt <= fail)
            {
                Ledger("throw", run, stepName, attempt, inv, exec);
                throw new InvalidOperationException($"transient failure at step {stepName}, attempt {attempt}");
            }
            if (hold) await Task.Delay(Timeout.Infinite, ct); // until this process is killed
            if (ms > 0) await Task.Delay(ms, ct);
            Ledger("end", run, stepName, attempt, inv, exec);
            return new StepOut(exec, pid, inv);
        });
        Ledger("ack", run, stepName, attempt, inv, result.Exec);
        execs[stepName] = result.Exec;
        i++;
    }
    return new { inv, pid, execs };
}

var retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(100), BackoffCoefficient = 2, MaxDelay = TimeSpan.FromSeconds(1) };
var workflows = new List<WorkflowDefinition>
{
    Workflows.Define("fault-main", RunPlanAsync, new WorkflowOptions { MaxConcurrency = 1000, MaxAttempts = 4, Retry = retry }),
    Workflows.Define("fault-parent", RunPlanAsync, new WorkflowOptions { MaxConcurrency = 1000, MaxAttempts = 4, Retry = retry }),
    Workflows.Define("fault-child", RunPlanAsync, new WorkflowOptions { MaxConcurrency = 1000, MaxAttempts = 4, Retry = retry }),
    Workflows.Define("fault-wait", RunPlanAsync, new WorkflowOptions { MaxConcurrency = 1000, MaxAttempts = 4, Retry = retry }),
    Workflows.Define("fault-capped", RunPlanAsync, new WorkflowOptions { MaxConcurrency = 2, MaxAttempts = 4, Retry = retry }),
    // Runs the plans too, at most one run per flow-control key (EmitOptions.Key) at a time: the kill tests' per-key caps.
    Workflows.Define("fault-keyed", RunPlanAsync, new WorkflowOptions { MaxConcurrency = 1000, MaxConcurrencyPerKey = 1, MaxAttempts = 4, Retry = retry }),
    Workflows.Define<TypedInput, object>("fault-typed", ctx => Task.FromResult<object>(new { count = ctx.Input.Count }),
        new WorkflowOptions { MaxConcurrency = 1000, MaxAttempts = 4, Retry = retry }),
    Workflows.Define("soak", RunPlanAsync, new WorkflowOptions { MaxConcurrency = 1000, MaxAttempts = 4, Retry = retry, Retention = TimeSpan.FromSeconds(20) }),
};

await using var worker = await RedflowWorker.StartAsync(new StartWorkerOptions
{
    App = "fault-worker",
    Url = config,
    Prefix = prefix,
    Workflows = workflows,
    Lease = lease,
    ReaperInterval = TimeSpan.FromMilliseconds(500),
    BlmoveTimeout = TimeSpan.FromMilliseconds(500),
    CancelGrace = TimeSpan.FromSeconds(3),
    ShutdownTimeout = TimeSpan.FromSeconds(2),
    Concurrency = concurrency,
    LoggerFactory = Environment.GetEnvironmentVariable("REDFLOW_TEST_LOG") == "1" ? new StdoutLoggerFactory() : null,
});
node.SetResult(worker.Node);
Console.WriteLine($"ready {worker.Node}");
Console.Out.Flush();

var stop = new TaskCompletionSource();
AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.TrySetResult();
_ = Task.Run(() => { Console.In.ReadToEnd(); stop.TrySetResult(); });
_ = Task.Run(async () =>
{
    while (!stop.Task.IsCompleted)
    {
        Console.WriteLine($"mem {GC.GetTotalMemory(false)} {Environment.WorkingSet}");
        Console.Out.Flush();
        await Task.Delay(2000);
    }
});
await stop.Task;
await worker.StopAsync();
await side.DisposeAsync();

/// <summary>What every step body returns: the execution that made the result.</summary>
internal sealed record StepOut(string Exec, int Pid, string Inv);

/// <summary>The typed workflow's input: a missing or mistyped count is an invalid input.</summary>
internal sealed record TypedInput(int Count);

/// <summary>Writes every entry at Information and up to stdout as one line "level: message".</summary>
internal sealed class StdoutLoggerFactory : ILoggerFactory, ILogger
{
    public ILogger CreateLogger(string categoryName) => this;
    public void AddProvider(ILoggerProvider provider) { }
    public void Dispose() { }
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        lock (this) Console.WriteLine($"{logLevel}: {formatter(state, exception)}{(exception is null ? "" : " | " + exception.GetType().Name)}");
    }
}
