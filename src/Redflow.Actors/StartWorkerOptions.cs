using Microsoft.Extensions.Logging;

namespace Redflow;

/// <summary>Settings of a worker. Defaults are the ones listed on each property; all are checked at start.</summary>
public sealed record StartWorkerOptions
{
    /// <summary>The application name shown in stats and workflow metadata. Default <c>"redflow-worker"</c>.</summary>
    public string App { get; init; } = "redflow-worker";

    /// <summary><c>redis://[user:password@]host[:port][/db]</c>, <c>rediss://</c>, or a StackExchange.Redis configuration string.</summary>
    public string Url { get; init; } = "redis://localhost:6379";

    /// <summary>
    /// A StackExchange.Redis configuration to connect with instead of <see cref="Url"/> (several endpoints of a Redis
    /// Cluster, TLS callbacks, timeouts). When set, <see cref="Url"/> is ignored. The worker connects with a copy (the
    /// object is not changed) on which <c>AbortOnConnectFail</c> is false, <c>AllowAdmin</c> is true (for the
    /// <c>CONFIG GET</c> of the start checks) and <c>ClientName</c> defaults to <c>"redflow"</c>. Default null.
    /// </summary>
    public StackExchange.Redis.ConfigurationOptions? Configuration { get; init; }

    /// <summary>
    /// Opt-in durability against a primary's failover: after each step record and each completion, <c>WAIT</c> until
    /// this many replicas have the write (at most <see cref="WaitForReplicasTimeout"/>) before the handler gets the
    /// step's result or the run counts as done; when fewer acknowledged, the write is repeated (a no-op) and waited
    /// for again, with backoff. A child workflow's emit is covered by the step record that follows it (WAIT covers every
    /// earlier write on the connection); cron ticks are not waited for (a lost tick fires again, late). Narrows,
    /// does not close, the window in which acknowledged writes are lost to a failover (see docs/redis-cluster.md).
    /// Default 0: off.
    /// </summary>
    public int WaitForReplicas { get; init; }

    /// <summary>How long a <see cref="WaitForReplicas"/> wait may take. Default 1 s.</summary>
    public TimeSpan WaitForReplicasTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The workflows this worker runs.</summary>
    public IReadOnlyList<WorkflowDefinition> Workflows { get; init; } = [];

    /// <summary>The queues it serves, in priority order: an earlier queue's runs are claimed first. Default: the queues of its workflows.</summary>
    public IReadOnlyList<string>? Queues { get; init; }

    /// <summary>One pool of slots shared by all its queues: at most this many runs at once. Default 10.</summary>
    public int Concurrency { get; init; } = 10;

    /// <summary>How long a lease lasts without renewal; renewed every third of it. Default 15 s.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long an idle worker waits between fallback polls of its queues; a doorbell message (published when a queue
    /// gets ready runs) wakes it earlier. No blocking pop is issued: the name is kept from the API. Must be below the
    /// connection's timeout. Default 1 s.
    /// </summary>
    public TimeSpan BlmoveTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How often the reaper takes back expired leases and promotes due runs. Default 1 s.</summary>
    public TimeSpan ReaperInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The key prefix, as on the client. Default <c>"redflow"</c>.</summary>
    public string Prefix { get; init; } = "redflow";

    /// <summary>How long a running run's handler has to honour a cancel before it is recorded canceled anyway. Default 30 s.</summary>
    public TimeSpan CancelGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long <see cref="RedflowWorker.StopAsync"/> lets running runs finish before it cancels them and hands them back. Default 30 s.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A run of a workflow this worker does not have is handed back (for a worker that has it); once it is this old
    /// and still untaken, it fails with <see cref="UnknownWorkflowException"/>. Default 5 min.
    /// </summary>
    public TimeSpan UnknownWorkflowGrace { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// A run is failed as abandoned after this many lease expiries in a row with no step recorded, whose holders died
    /// with it (were not seen in Redis after their lease ran out; a lease that lapsed while Redis was paused or
    /// unreachable does not count). Default 3.
    /// </summary>
    public int AbandonAfter { get; init; } = 3;

    /// <summary>Outputs and step results larger than this (UTF-8 JSON) fail with a clear error. Default 512 KiB.</summary>
    public int MaxPayloadBytes { get; init; } = 512 * 1024;

    /// <summary>Start even when Redis is older than 7 or its <c>maxmemory-policy</c> is not <c>noeviction</c> (not recommended). Default false.</summary>
    public bool SkipPreconditionChecks { get; init; }

    /// <summary>
    /// Run the reaper and the cron actor with this worker: its own when standalone, or this node's share of the cluster
    /// singletons (they run once per cluster, on the oldest node that has them). False leaves both to other workers;
    /// claims still take back expired leases they meet. Default true.
    /// </summary>
    public bool RunReaperAndCron { get; init; } = true;

    /// <summary>Services for class-style workflows (constructor injection), or null to use their parameterless constructor.</summary>
    public IServiceProvider? Services { get; init; }

    /// <summary>Where the worker logs; null logs nothing (Akka's own warnings still go to its default logger).</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The queues served: <see cref="Queues"/>, or those of the workflows in their listed order.</summary>
    internal IReadOnlyList<string> EffectiveQueues =>
        Queues is { Count: > 0 } queues ? queues : Workflows.Select(w => w.Options.Queue).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>Checks every option; throws <see cref="ArgumentOutOfRangeException"/> (or <see cref="ArgumentException"/>) naming it.</summary>
    internal void Validate(TimeSpan connectionTimeout)
    {
        Names.Check(App, nameof(App));
        Protocol.RedisConnection.CheckPrefix(Prefix);
        if (Workflows is null || Workflows.Count == 0)
            throw new ArgumentException("StartWorkerOptions.Workflows is empty: give the worker at least one workflow to run.", nameof(Workflows));
        var duplicate = Workflows.GroupBy(w => w.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"StartWorkerOptions.Workflows names workflow '{duplicate.Key}' {duplicate.Count()} times.", nameof(Workflows));
        foreach (var queue in EffectiveQueues) Names.Check(queue, "queue", allowColon: false);
        Positive(Concurrency, nameof(Concurrency));
        Positive(AbandonAfter, nameof(AbandonAfter));
        Positive(MaxPayloadBytes, nameof(MaxPayloadBytes));
        Positive(Lease, nameof(Lease));
        Positive(BlmoveTimeout, nameof(BlmoveTimeout));
        Positive(ReaperInterval, nameof(ReaperInterval));
        Positive(CancelGrace, nameof(CancelGrace));
        Positive(ShutdownTimeout, nameof(ShutdownTimeout));
        Protocol.RedisConnection.CheckReplicaWait(WaitForReplicas, WaitForReplicasTimeout);
        Positive(UnknownWorkflowGrace, nameof(UnknownWorkflowGrace));
        if (Lease < TimeSpan.FromMilliseconds(300))
            throw new ArgumentOutOfRangeException(nameof(Lease), Lease, "Lease must be at least 300 ms (it is renewed every third of it).");
        if (BlmoveTimeout >= connectionTimeout)
            throw new ArgumentOutOfRangeException(nameof(BlmoveTimeout), BlmoveTimeout, $"BlmoveTimeout must be below the connection's timeout ({connectionTimeout}).");
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive.");
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive.");
    }
}
