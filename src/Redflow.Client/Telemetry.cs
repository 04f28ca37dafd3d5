using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Redflow;

/// <summary>
/// Redflow's OpenTelemetry sources: the <see cref="ActivitySource"/> and the <see cref="Meter"/> are both named
/// <see cref="Name"/>. Spans: <c>redflow.emit</c>, <c>redflow.run</c> (one per attempt, its parent the emitting
/// code's span), <c>redflow.step</c>, <c>redflow.child.start</c> and <c>redflow.child.wait</c>. Instruments:
/// <c>redflow.runs.started|succeeded|failed|canceled|retried</c>, <c>redflow.leases.taken_over</c>,
/// <c>redflow.cron.fired|skipped</c>, <c>redflow.redis.disconnects|reconnects</c> (a worker lost Redis, or got it back), histograms <c>redflow.step.duration</c> and <c>redflow.run.duration</c> (ms),
/// gauges <c>redflow.queue.depth</c> and <c>redflow.queue.running</c> (per queue, sampled every few seconds).
/// </summary>
public static class RedflowTelemetry
{
    /// <summary>The name of the activity source and the meter: <c>AddSource(RedflowTelemetry.Name)</c>, <c>AddMeter(RedflowTelemetry.Name)</c>.</summary>
    public const string Name = "Redflow";

    internal static readonly ActivitySource Source = new(Name, typeof(RedflowTelemetry).Assembly.GetName().Version?.ToString());
    internal static readonly Meter Meter = new(Name, typeof(RedflowTelemetry).Assembly.GetName().Version?.ToString());

    internal static readonly Counter<long> RunsStarted = Meter.CreateCounter<long>("redflow.runs.started", "{run}", "Run attempts started by workers");
    internal static readonly Counter<long> RunsSucceeded = Meter.CreateCounter<long>("redflow.runs.succeeded", "{run}", "Runs that succeeded");
    internal static readonly Counter<long> RunsFailed = Meter.CreateCounter<long>("redflow.runs.failed", "{run}", "Runs that failed for good");
    internal static readonly Counter<long> RunsCanceled = Meter.CreateCounter<long>("redflow.runs.canceled", "{run}", "Running runs that ended canceled");
    internal static readonly Counter<long> RunsRetried = Meter.CreateCounter<long>("redflow.runs.retried", "{run}", "Failed attempts scheduled for a retry");
    internal static readonly Counter<long> RunsSuspended = Meter.CreateCounter<long>("redflow.runs.suspended", "{run}", "Runs that suspended: every unfinished call of the handler waits");
    internal static readonly Counter<long> RunsResumed = Meter.CreateCounter<long>("redflow.runs.resumed", "{run}", "Waiting runs started again after one of their waits was satisfied or timed out");
    internal static readonly Counter<long> LeaseTakeovers = Meter.CreateCounter<long>("redflow.leases.taken_over", "{run}", "Runs taken back from a worker whose lease expired");
    internal static readonly Counter<long> CronFired = Meter.CreateCounter<long>("redflow.cron.fired", "{tick}", "Cron ticks that started a run");
    internal static readonly Counter<long> CronSkipped = Meter.CreateCounter<long>("redflow.cron.skipped", "{tick}", "Cron ticks skipped at MaxConcurrency");
    internal static readonly Counter<long> RedisDisconnects = Meter.CreateCounter<long>("redflow.redis.disconnects", "{event}", "Times a worker lost Redis (its first failed call after a success)");
    internal static readonly Counter<long> RedisReconnects = Meter.CreateCounter<long>("redflow.redis.reconnects", "{event}", "Times a worker got Redis back after losing it");
    internal static readonly Histogram<double> StepDuration = Meter.CreateHistogram<double>("redflow.step.duration", "ms", "Step function duration");
    internal static readonly Histogram<double> RunDuration = Meter.CreateHistogram<double>("redflow.run.duration", "ms", "Run attempt duration on a worker");

    private static readonly ConcurrentDictionary<string, IReadOnlyList<QueueStats>> QueueSamples = new();

    static RedflowTelemetry()
    {
        Meter.CreateObservableGauge("redflow.queue.depth", () => Sample(q => q.Ready), "{run}", "Runs ready to be claimed");
        Meter.CreateObservableGauge("redflow.queue.running", () => Sample(q => q.Running), "{run}", "Runs leased by workers");
    }

    /// <summary>Records the latest queue counts one worker sampled (its heartbeat), for the gauges.</summary>
    internal static void UpdateQueues(string prefix, IReadOnlyList<QueueStats> queues) => QueueSamples[prefix] = queues;

    private static IEnumerable<Measurement<long>> Sample(Func<QueueStats, long> value) =>
        QueueSamples.SelectMany(kv => kv.Value.Select(q =>
            new Measurement<long>(value(q), new KeyValuePair<string, object?>("redflow.queue", q.Name), new KeyValuePair<string, object?>("redflow.prefix", kv.Key))));

    /// <summary>The tags of a run, on spans and measurements.</summary>
    internal static TagList RunTags(string runId, string workflow, string queue, int attempt) => new()
    {
        { "redflow.run_id", runId },
        { "redflow.workflow", workflow },
        { "redflow.queue", queue },
        { "redflow.attempt", attempt },
    };

    /// <summary>The tags of a workflow (low cardinality: for measurements).</summary>
    internal static TagList WorkflowTags(string workflow, string queue) => new()
    {
        { "redflow.workflow", workflow },
        { "redflow.queue", queue },
    };

    /// <summary>The W3C trace context of the current activity, stored with a run at emit ("" when there is none).</summary>
    internal static string CurrentTraceParent() => Activity.Current is { IdFormat: ActivityIdFormat.W3C } a ? a.Id ?? "" : "";
}
