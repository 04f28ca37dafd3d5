using System.Text.Json;

namespace Redflow;

/// <summary>How a workflow runs: its queue, caps, attempts, backoff, cron triggers and failure handler.</summary>
public sealed record WorkflowOptions
{
    /// <summary>The queue its runs go to. Default <c>"default"</c>.</summary>
    public string Queue { get; init; } = "default";

    /// <summary>At most this many runs of the workflow are <see cref="RunStatus.Running"/> at once, across all workers. Default 1.</summary>
    public int MaxConcurrency { get; init; } = 1;

    /// <summary>Attempts a run gets before it fails for good. Default 3.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>The backoff between attempts.</summary>
    public RetryPolicy Retry { get; init; } = new();

    /// <summary>Cron triggers that start runs of the workflow.</summary>
    public IReadOnlyList<CronTrigger> Cron { get; init; } = [];

    /// <summary>Event triggers: each event of one of these names starts one run of the workflow, its payload as the input.</summary>
    public IReadOnlyList<EventTrigger> Events { get; init; } = [];

    /// <summary>Called once a run has failed for good (never on cancel); at least once, exactly once when no worker dies during it.</summary>
    public Func<OnFailureContext, Task>? OnFailure { get; init; }

    /// <summary>How long a finished run and its steps stay in Redis. Default 7 days.</summary>
    public TimeSpan Retention { get; init; } = TimeSpan.FromDays(7);

    /// <summary>
    /// At most this many runs per flow-control key (<see cref="EmitOptions.Key"/>) are <see cref="RunStatus.Running"/>
    /// at once, across all workers, beside <see cref="MaxConcurrency"/>. A key at its cap never holds back other keys.
    /// Runs without a key are limited by <see cref="MaxConcurrency"/> alone. Null (the default): no per-key cap.
    /// </summary>
    public int? MaxConcurrencyPerKey { get; init; }

    /// <summary>
    /// At most <see cref="Redflow.RateLimit.Limit"/> runs start in any window of <see cref="Redflow.RateLimit.Period"/>
    /// (a sliding window, on the Redis clock, across all workers), per key for runs with one. Every lease counts: a first
    /// start, a retry, a resume after a wait. Runs over the limit stay queued; none is dropped. Null: no limit.
    /// </summary>
    public RateLimit? RateLimit { get; init; }

    /// <summary>
    /// Folds emits with the same key (runs without a key share one slot) into one pending run that takes the latest
    /// input and starts once no emit came for the period, or at the latest MaxWait after the first. Null: none.
    /// </summary>
    public DebounceOptions? Debounce { get; init; }

    /// <summary>Checks every value; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    internal void Validate(string workflow)
    {
        Names.Check(Queue, "queue", allowColon: false);
        if (MaxConcurrency < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxConcurrency), MaxConcurrency, $"Workflow '{workflow}': MaxConcurrency must be at least 1.");
        if (MaxAttempts < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, $"Workflow '{workflow}': MaxAttempts must be at least 1.");
        if (Retention <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(Retention), Retention, $"Workflow '{workflow}': Retention must be positive.");
        Retry.Validate(workflow);
        if (MaxConcurrencyPerKey is < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxConcurrencyPerKey), MaxConcurrencyPerKey, $"Workflow '{workflow}': MaxConcurrencyPerKey must be at least 1 (or null for none).");
        RateLimit?.Validate(workflow);
        Debounce?.Validate(workflow);
        foreach (var trigger in Events)
        {
            ArgumentNullException.ThrowIfNull(trigger, nameof(Events));
            Names.Check(trigger.Name, $"event name of workflow '{workflow}'");
        }
    }
}

/// <summary>A rate limit: at most <paramref name="Limit"/> runs start in any window of length <paramref name="Period"/>.</summary>
/// <param name="Limit">Starts allowed per window, at least 1.</param>
/// <param name="Period">The window's length, at least 1 ms.</param>
public sealed record RateLimit(int Limit, TimeSpan Period)
{
    internal void Validate(string workflow)
    {
        if (Limit < 1)
            throw new ArgumentOutOfRangeException(nameof(Limit), Limit, $"Workflow '{workflow}': RateLimit.Limit must be at least 1.");
        if (Period < TimeSpan.FromMilliseconds(1))
            throw new ArgumentOutOfRangeException(nameof(Period), Period, $"Workflow '{workflow}': RateLimit.Period must be at least 1 ms.");
    }
}

/// <summary>Debouncing of a workflow's emits: a pending run starts <paramref name="Period"/> after the last emit that folded into it.</summary>
/// <param name="Period">How long no emit must come before the pending run starts; at least 1 ms.</param>
public sealed record DebounceOptions(TimeSpan Period)
{
    /// <summary>The pending run starts at the latest this long after the first emit that made it, however many follow. Null: no bound. Not below <see cref="Period"/>.</summary>
    public TimeSpan? MaxWait { get; init; }

    internal void Validate(string workflow)
    {
        if (Period < TimeSpan.FromMilliseconds(1))
            throw new ArgumentOutOfRangeException(nameof(Period), Period, $"Workflow '{workflow}': Debounce.Period must be at least 1 ms.");
        if (MaxWait is { } max && max < Period)
            throw new ArgumentOutOfRangeException(nameof(MaxWait), MaxWait, $"Workflow '{workflow}': Debounce.MaxWait ({max}) must not be below Debounce.Period ({Period}).");
    }
}

/// <summary>Exponential backoff between attempts of a run.</summary>
public sealed record RetryPolicy
{
    /// <summary>The delay before the second attempt. Default 1 s.</summary>
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Each further delay is the previous one times this. Default 2.</summary>
    public double BackoffCoefficient { get; init; } = 2;

    /// <summary>No delay is longer than this. Default 5 min.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The delay before the attempt that follows failed attempt <paramref name="failedAttempt"/> (1-based).</summary>
    public TimeSpan DelayAfter(int failedAttempt)
    {
        var factor = Math.Pow(BackoffCoefficient, Math.Max(0, failedAttempt - 1));
        var ms = InitialDelay.TotalMilliseconds * factor;
        return double.IsFinite(ms) && ms < MaxDelay.TotalMilliseconds ? TimeSpan.FromMilliseconds(ms) : MaxDelay;
    }

    internal void Validate(string workflow)
    {
        if (InitialDelay < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(InitialDelay), InitialDelay, $"Workflow '{workflow}': Retry.InitialDelay must not be negative.");
        if (BackoffCoefficient < 1 || !double.IsFinite(BackoffCoefficient))
            throw new ArgumentOutOfRangeException(nameof(BackoffCoefficient), BackoffCoefficient, $"Workflow '{workflow}': Retry.BackoffCoefficient must be at least 1.");
        if (MaxDelay < InitialDelay)
            throw new ArgumentOutOfRangeException(nameof(MaxDelay), MaxDelay, $"Workflow '{workflow}': Retry.MaxDelay must not be below InitialDelay.");
    }
}

/// <summary>What to do with cron ticks missed while no cron actor ran.</summary>
public enum MisfirePolicy
{
    /// <summary>Run the latest missed tick once, late; skip the older ones (the default).</summary>
    RunOnce,
    /// <summary>Skip every missed tick.</summary>
    SkipAll,
    /// <summary>Run every missed tick.</summary>
    RunAll,
}

/// <summary>A cron schedule that starts runs of a workflow.</summary>
/// <param name="Expression">A 5-field cron expression, or 6 fields with seconds first.</param>
public sealed record CronTrigger(string Expression)
{
    /// <summary>The trigger id; by default derived from the workflow, the expression and the time zone.</summary>
    public string? Id { get; init; }

    /// <summary>The IANA time zone the expression is read in. Default UTC.</summary>
    public string Timezone { get; init; } = "UTC";

    /// <summary>The input of the runs it starts.</summary>
    public object? Input { get; init; }

    /// <summary>What to do with ticks missed while no cron actor ran.</summary>
    public MisfirePolicy Misfire { get; init; } = MisfirePolicy.RunOnce;
}

/// <summary>What an <see cref="WorkflowOptions.OnFailure"/> handler is told.</summary>
/// <param name="Run">The failed run.</param>
/// <param name="Input">Its input.</param>
/// <param name="Error">The error it failed with.</param>
public sealed record OnFailureContext(RunInfo Run, JsonElement Input, RunError Error);
