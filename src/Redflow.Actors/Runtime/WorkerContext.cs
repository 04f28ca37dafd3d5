using System.Diagnostics;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>What every actor of one worker shares: its options, its store, its node id and its workflows. Immutable.</summary>
internal sealed record WorkerContext(StartWorkerOptions Options, RedisStore Store, RedisRedflowClient Client, string Node, IReadOnlyDictionary<string, WorkflowDefinition> Workflows)
{
    /// <summary>Where handler and step logs get their scope (run id, workflow, attempt, step name).</summary>
    public Microsoft.Extensions.Logging.ILogger Logger { get; } =
        (Options.LoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger("Redflow.Run");

    /// <summary>A log scope naming the run (and the step, if any), or none when the worker's logger logs nothing.</summary>
    public IDisposable? LogScope(ClaimedRun run, string? step = null)
    {
        if (!Logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Critical)) return null;
        var scope = new Dictionary<string, object> { ["RunId"] = run.Id, ["Workflow"] = run.Workflow, ["Attempt"] = run.Attempt };
        if (step is not null) scope["Step"] = step;
        return Logger.BeginScope(scope);
    }

    /// <summary>Whether this worker reaches Redis, and when its pollers and lease renewal last worked (for health checks).</summary>
    public WorkerHealth Health { get; } = new(
        (Options.LoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger("Redflow.Worker"), Node);

    /// <summary>Set once the worker is stopping: RunActors then stop claiming a next run as they complete.</summary>
    public WorkerLifecycle Lifecycle { get; } = new();

    /// <summary>How long before the lease deadline a run cancels its own handler (self-fencing), so it stops before another worker can take the run over.</summary>
    public TimeSpan FenceMargin => TimeSpan.FromTicks(Math.Max(Options.Lease.Ticks / 5, TimeSpan.FromMilliseconds(100).Ticks));

    /// <summary>A monotonic timestamp (for local lease deadlines: immune to wall-clock changes).</summary>
    public static long Now() => Stopwatch.GetTimestamp();

    /// <summary>The monotonic timestamp <paramref name="span"/> after <paramref name="from"/>.</summary>
    public static long After(long from, TimeSpan span) => from + (long)(span.TotalSeconds * Stopwatch.Frequency);

    /// <summary>Time from now until a monotonic timestamp (negative when passed).</summary>
    public static TimeSpan Until(long timestamp) => Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), timestamp);
}

/// <summary>The one piece of state a worker's actors share: whether it still takes new runs (written once, by the WorkerActor).</summary>
internal sealed class WorkerLifecycle
{
    private volatile bool _draining;

    public bool Draining => _draining;

    public void StartDraining() => _draining = true;
}
