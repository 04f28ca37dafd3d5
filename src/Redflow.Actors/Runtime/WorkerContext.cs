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

    /// <summary>What a completion asks for the freed slot: the next run of the worker's queues (made once per worker, not per completion).</summary>
    public NextRunRequest NextRun { get; } = new(Options.Lease, Node, Options.EffectiveQueues);

    /// <summary>The worker's queues, in their priority order.</summary>
    public IReadOnlyList<string> Queues => NextRun.Queues;

    /// <summary>A new turn number (<see cref="TurnRef"/>): unique among the runs started on this worker's RunActors.</summary>
    public int NextTurn() => Interlocked.Increment(ref _turns);
    private int _turns;

    /// <summary>Whether this worker reaches Redis, and when its pollers and lease renewal last worked (for health checks).</summary>
    public WorkerHealth Health { get; } = new(
        (Options.LoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger("Redflow.Worker"), Node);

    /// <summary>The worker's estimate of the Redis clock, from its script answers (local lease deadlines).</summary>
    public RedisClock RedisClock { get; } = new();

    /// <summary>The local deadline of a lease that Redis set to <paramref name="deadlineMs"/> in a call sent at <paramref name="sent"/>, answered at <paramref name="received"/>.</summary>
    public long LeaseDeadline(long deadlineMs, long sent, long received)
    {
        var ranAt = deadlineMs - (long)Options.Lease.TotalMilliseconds;
        RedisClock.Observe(sent, received, ranAt);
        return RedisClock.LocalDeadline(deadlineMs, sent, ranAt);
    }

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

/// <summary>
/// The worker's estimate of the Redis clock, for local lease deadlines. A script answer that says Redis's time was
/// <c>R</c> when it ran, for a call sent at local time <c>s</c>, bounds the offset (Redis minus local) from above by
/// <c>R - s</c>: the script ran after the call was sent. The tightest such bound over the last few seconds converts a
/// deadline on the Redis clock into the latest local instant that is surely before it, so a worker fences itself
/// before anyone else can take its run (G3), and an answer that arrived late (a paused Redis ran the call only
/// after the pause) still keeps the lease Redis granted instead of one counted from the send time.
/// </summary>
internal sealed class RedisClock
{
    /// <summary>A bound is trusted this long; an older one is replaced by the next sample, even a looser one.</summary>
    private static readonly TimeSpan SampleLife = TimeSpan.FromSeconds(10);

    /// <summary>Allowance for the two clocks' drift over a sample's life (500 ppm over 10 s).</summary>
    private static readonly TimeSpan DriftAllowance = TimeSpan.FromMilliseconds(5);

    private readonly Lock _gate = new();
    private double _offsetMs = double.NaN; // upper bound of (Redis ms - local ms); NaN before the first sample
    private long _sampledAt;

    /// <summary>
    /// A call sent at <paramref name="sent"/> and answered at <paramref name="received"/> (local monotonic
    /// timestamps) ran on Redis at <paramref name="redisMs"/>. A sample whose lower bound exceeds the current upper
    /// bound means the Redis clock jumped forward (a failover to a server with another clock): it replaces the bound.
    /// </summary>
    public void Observe(long sent, long received, long redisMs)
    {
        var upper = redisMs - Ms(sent);
        var lower = redisMs - Ms(received);
        lock (_gate)
        {
            if (double.IsNaN(_offsetMs) || upper <= _offsetMs || lower > _offsetMs
                || WorkerContext.Until(_sampledAt) < -SampleLife)
            {
                _offsetMs = upper;
                _sampledAt = sent;
            }
        }
    }

    /// <summary>
    /// The local monotonic timestamp of Redis instant <paramref name="redisMs"/>, early by the drift allowance, for
    /// a call sent at <paramref name="sent"/> that ran on Redis at <paramref name="ranAtMs"/>: never later than what
    /// that call alone proves (<paramref name="sent"/> plus the time from <paramref name="ranAtMs"/> to the deadline).
    /// </summary>
    public long LocalDeadline(long redisMs, long sent, long ranAtMs)
    {
        var fromSend = WorkerContext.After(sent, TimeSpan.FromMilliseconds(redisMs - ranAtMs));
        double offset;
        lock (_gate) offset = _offsetMs;
        if (double.IsNaN(offset)) return fromSend;
        var fromClock = (long)((redisMs - offset - DriftAllowance.TotalMilliseconds) * Stopwatch.Frequency / 1000.0);
        return Math.Max(fromSend, fromClock);
    }

    private static double Ms(long timestamp) => timestamp * 1000.0 / Stopwatch.Frequency;
}
