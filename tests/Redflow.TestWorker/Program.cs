// A worker process that tests start and kill (SIGKILL, SIGSTOP). Usage:
//   Redflow.TestWorker <redis-url> <prefix> <ledger-file> [lease-ms] [step-two-sleep-ms]
// With REDFLOW_TEST_LOG=1 the worker logs (Information and up) to stdout, one line an entry, so a test can count them.
// Runs the "ledger" workflow: three steps that each append "<run> <step> <attempt> <pid> start|end" lines to the
// ledger file (an independent record of what each step body did), the second of which sleeps as long as the
// last argument says, so a test can kill the process mid-step. Prints "ready" once the worker has started.
using Microsoft.Extensions.Logging;
using Redflow;

var url = args[0];
var prefix = args[1];
var ledger = args[2];
var lease = TimeSpan.FromMilliseconds(args.Length > 3 ? int.Parse(args[3]) : 2000);
var stepTwoSleep = args.Length > 4 ? int.Parse(args[4]) : 0;
var pid = Environment.ProcessId;

void Write(string runId, string step, int attempt, string what)
{
    lock (ledger) File.AppendAllText(ledger, $"{runId} {step} {attempt} {pid} {what}\n");
}

async Task<string> Step(WorkflowHandlerContext ctx, string name, int sleepMs)
{
    return await ctx.Step.RunAsync(name, async ct =>
    {
        Write(ctx.Run.Id, name, ctx.Run.Attempt, "start");
        if (sleepMs > 0) await Task.Delay(sleepMs, ct);
        Write(ctx.Run.Id, name, ctx.Run.Attempt, "end");
        return $"{name}-done-by-{pid}";
    });
}

var ledgerWorkflow = Workflows.Define("ledger", async ctx =>
{
    var a = await Step(ctx, "one", 0);
    var b = await Step(ctx, "two", stepTwoSleep);
    var c = await Step(ctx, "three", 0);
    return new { a, b, c };
}, new WorkflowOptions { MaxConcurrency = 100 });

await using var worker = await RedflowWorker.StartAsync(new StartWorkerOptions
{
    App = "test-worker",
    Url = url,
    Prefix = prefix,
    Workflows = [ledgerWorkflow],
    Lease = lease,
    ReaperInterval = TimeSpan.FromMilliseconds(200),
    BlmoveTimeout = TimeSpan.FromMilliseconds(200),
    Concurrency = 4,
    LoggerFactory = Environment.GetEnvironmentVariable("REDFLOW_TEST_LOG") == "1" ? new StdoutLoggerFactory() : null,
});
Console.WriteLine("ready");
Console.Out.Flush();

// Stop gracefully on SIGTERM or when stdin closes.
var stop = new TaskCompletionSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.TrySetResult();
_ = Task.Run(() => { Console.In.ReadToEnd(); stop.TrySetResult(); });
await stop.Task;
await worker.StopAsync();

/// <summary>Writes every entry at Information and up to stdout as one line "level category: message".</summary>
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
