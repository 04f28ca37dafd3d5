using System.Text.Json;

namespace Redflow;

/// <summary>Where a run is in its life.</summary>
public enum RunStatus
{
    /// <summary>Waiting for its start time (delayed start or retry backoff).</summary>
    Scheduled,
    /// <summary>Ready to be claimed by a worker.</summary>
    Queued,
    /// <summary>Leased by a worker whose handler is running it.</summary>
    Running,
    /// <summary>Suspended on a child run: holds no lease and no slot.</summary>
    Waiting,
    /// <summary>Finished with an output.</summary>
    Succeeded,
    /// <summary>Finished with an error, for good.</summary>
    Failed,
    /// <summary>Canceled on request.</summary>
    Canceled,
}

/// <summary>Why a handler's cancellation token fired.</summary>
public enum StopReason
{
    /// <summary>The token has not fired.</summary>
    None,
    /// <summary>Cancellation was requested: the run ends <see cref="RunStatus.Canceled"/>.</summary>
    CancelRequested,
    /// <summary>The worker is shutting down: the run goes back to its queue.</summary>
    WorkerStopping,
    /// <summary>The lease was lost: another worker owns the run, nothing is recorded.</summary>
    LeaseLost,
}

/// <summary>What a handler knows about its run.</summary>
/// <param name="Id">The run id.</param>
/// <param name="Workflow">The workflow name.</param>
/// <param name="Queue">The queue the run was claimed from.</param>
/// <param name="Attempt">The attempt, 1-based: grows by one each time the run is retried after a failure.</param>
/// <param name="MaxAttempts">The attempts allowed in all.</param>
public sealed record RunInfo(string Id, string Workflow, string Queue, int Attempt, int MaxAttempts);

/// <summary>An error recorded for a run or a step.</summary>
/// <param name="Type">The exception's type name.</param>
/// <param name="Message">The exception's message.</param>
/// <param name="StackTrace">The stack trace, when there was one.</param>
public sealed record RunError(string Type, string Message, string? StackTrace = null)
{
    /// <summary>Builds the record of an exception.</summary>
    public static RunError From(Exception ex) => new(ex.GetType().FullName ?? ex.GetType().Name, ex.Message, ex.StackTrace);
}

/// <summary>A run as stored in Redis.</summary>
public sealed record RunRecord
{
    /// <summary>The run id.</summary>
    public required string Id { get; init; }
    /// <summary>The workflow name.</summary>
    public required string Workflow { get; init; }
    /// <summary>The queue it runs on.</summary>
    public required string Queue { get; init; }
    /// <summary>Its status now.</summary>
    public required RunStatus Status { get; init; }
    /// <summary>Its input (JSON <c>null</c> when none was given).</summary>
    public JsonElement Input { get; init; }
    /// <summary>Its output, once succeeded.</summary>
    public JsonElement? Output { get; init; }
    /// <summary>The error the run ended with: set for a failed run, and for a run scheduled for a retry (its last attempt's); null once it succeeded.</summary>
    public RunError? Error { get; init; }
    /// <summary>The attempt, 1-based.</summary>
    public int Attempt { get; init; }
    /// <summary>The attempts allowed.</summary>
    public int MaxAttempts { get; init; }
    /// <summary>When it was emitted (Redis clock).</summary>
    public DateTimeOffset CreatedAt { get; init; }
    /// <summary>When it becomes (or became) claimable.</summary>
    public DateTimeOffset? AvailableAt { get; init; }
    /// <summary>When a worker first started it.</summary>
    public DateTimeOffset? StartedAt { get; init; }
    /// <summary>When it finished.</summary>
    public DateTimeOffset? FinishedAt { get; init; }
    /// <summary>The run that started it as a child, if any.</summary>
    public string? ParentRunId { get; init; }
    /// <summary>The idempotency key it was emitted with, if any.</summary>
    public string? IdempotencyKey { get; init; }
    /// <summary>The reason given when it was canceled.</summary>
    public string? CancelReason { get; init; }
    /// <summary>How many times it was resumed without a failure: takeovers after a worker died, hand-backs, resumes after waiting.</summary>
    public int Resumes { get; init; }
    /// <summary>The run this one reruns, if it was made by <see cref="IRedflowClient.RerunAsync"/>.</summary>
    public string? RerunOf { get; init; }
    /// <summary>What a <see cref="RunStatus.Waiting"/> run waits on; empty otherwise (and in run listings).</summary>
    public IReadOnlyList<WaitInfo> Waits { get; init; } = [];
    /// <summary>The flow-control key it was emitted with (<see cref="EmitOptions.Key"/>), if any.</summary>
    public string? Key { get; init; }
    /// <summary>Its priority (<see cref="EmitOptions.Priority"/>).</summary>
    public int Priority { get; init; }
}

/// <summary>A step of a run, as recorded.</summary>
public sealed record StepRecord
{
    /// <summary>The step name.</summary>
    public required string Name { get; init; }
    /// <summary><see cref="RunStatus.Succeeded"/> or <see cref="RunStatus.Failed"/>.</summary>
    public required RunStatus Status { get; init; }
    /// <summary>The recorded result of a succeeded step.</summary>
    public JsonElement? Output { get; init; }
    /// <summary>The error of a failed step.</summary>
    public RunError? Error { get; init; }
    /// <summary>When the step function started.</summary>
    public DateTimeOffset? StartedAt { get; init; }
    /// <summary>When the step finished.</summary>
    public DateTimeOffset? FinishedAt { get; init; }
    /// <summary>The run attempt in which it was recorded.</summary>
    public int Attempt { get; init; }
}

/// <summary>The state of a run as seen through a <see cref="RunHandle"/>.</summary>
/// <param name="Status">The status now.</param>
/// <param name="Output">The output, once succeeded.</param>
/// <param name="Error">The error, once failed.</param>
public sealed record RunState(RunStatus Status, JsonElement? Output, RunError? Error);

/// <summary>Options of one emit.</summary>
public sealed record EmitOptions
{
    /// <summary>Emitting twice with the same key (per workflow) returns the same run while the key is retained.</summary>
    public string? IdempotencyKey { get; init; }
    /// <summary>Start no earlier than this instant.</summary>
    public DateTimeOffset? RunAt { get; init; }
    /// <summary>Start after this delay, measured on the Redis clock.</summary>
    public TimeSpan? Delay { get; init; }
    /// <summary>Run on this queue instead of the workflow's own.</summary>
    public string? Queue { get; init; }
    /// <summary>
    /// The run's flow-control key (a tenant, a user, an account): <see cref="WorkflowOptions.MaxConcurrencyPerKey"/>,
    /// <see cref="WorkflowOptions.RateLimit"/> and <see cref="WorkflowOptions.Debounce"/> apply per key. Null: none.
    /// </summary>
    public string? Key { get; init; }
    /// <summary>Within its queue, a ready run of higher priority is claimed first (across the queue's workflows). Default 0.</summary>
    public int Priority { get; init; }
}

/// <summary>Options of a step.</summary>
public sealed record StepOptions
{
    /// <summary>Fail the step with <see cref="RedflowTimeoutException"/> when its function runs longer.</summary>
    public TimeSpan? Timeout { get; init; }
}

/// <summary>Options of a child workflow started from a step.</summary>
public sealed record ChildWorkflowOptions
{
    /// <summary>Bounds the wait for the child's result.</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>Deduplicates the child across all runs of its workflow.</summary>
    public string? IdempotencyKey { get; init; }
    /// <summary>Start the child no earlier than this instant.</summary>
    public DateTimeOffset? RunAt { get; init; }
    /// <summary>Run the child on this queue instead of its workflow's own.</summary>
    public string? Queue { get; init; }
}

/// <summary>Filters and paging of <see cref="IRedflowClient.ListRunsAsync"/>.</summary>
public sealed record ListRunsParams
{
    /// <summary>Only runs of this workflow.</summary>
    public string? Workflow { get; init; }
    /// <summary>Only runs in this status.</summary>
    public RunStatus? Status { get; init; }
    /// <summary>Only children of this run.</summary>
    public string? ParentRunId { get; init; }
    /// <summary>At most this many runs (default 50).</summary>
    public int Limit { get; init; } = 50;
    /// <summary>Skip this many runs (paging).</summary>
    public int Offset { get; init; }
    /// <summary>Only runs created before this instant (paging by time).</summary>
    public DateTimeOffset? Before { get; init; }
    /// <summary>Only runs created at or after this instant.</summary>
    public DateTimeOffset? After { get; init; }
    /// <summary>
    /// Only runs on this queue. Runs are indexed by workflow, not queue, so this filter is applied to a window of the
    /// newest <see cref="FilterWindow"/> runs that match the other filters.
    /// </summary>
    public string? Queue { get; init; }

    /// <summary>How many runs the filters applied in memory (a queue, or a workflow or status with a parent) look at.</summary>
    public const int FilterWindow = 2000;
}

/// <summary>A cron trigger, its next fire time, whether it is paused and the input of the runs it starts.</summary>
/// <param name="Id">The trigger id.</param>
/// <param name="Expression">The cron expression.</param>
/// <param name="Timezone">The IANA time zone.</param>
/// <param name="NextFireAt">The next instant it fires, if any (while paused: the next instant it would fire).</param>
public sealed record CronTriggerInfo(string Id, string Expression, string Timezone, DateTimeOffset? NextFireAt)
{
    /// <summary>Paused (<see cref="RedflowInspection.PauseCronTriggerAsync"/>): it fires nothing, and the instants that pass are skipped.</summary>
    public bool Paused { get; init; }

    /// <summary>The input of the runs it starts, as JSON; null when its workers do not publish it (older versions).</summary>
    public JsonElement? Input { get; init; }
}

/// <summary>An application that registered a workflow, and when it was last seen.</summary>
/// <param name="App">The worker's app name.</param>
/// <param name="LastSeen">Its last heartbeat.</param>
public sealed record WorkflowWorker(string App, DateTimeOffset LastSeen);

/// <summary>A registered workflow as published by workers.</summary>
public sealed record WorkflowMeta
{
    /// <summary>The workflow name.</summary>
    public required string Name { get; init; }
    /// <summary>Its queue.</summary>
    public required string Queue { get; init; }
    /// <summary>How many of its runs may be running at once.</summary>
    public int MaxConcurrency { get; init; }
    /// <summary>The attempts a run gets.</summary>
    public int MaxAttempts { get; init; }
    /// <summary>Its cron triggers.</summary>
    public IReadOnlyList<CronTriggerInfo> Cron { get; init; } = [];
    /// <summary>The apps that registered it.</summary>
    public IReadOnlyList<WorkflowWorker> Workers { get; init; } = [];
    /// <summary>Its runs by status.</summary>
    public IReadOnlyDictionary<RunStatus, long> RunCounts { get; init; } = new Dictionary<RunStatus, long>();
    /// <summary>At most this many of its runs are running per flow-control key; null: no per-key cap.</summary>
    public int? MaxConcurrencyPerKey { get; init; }
    /// <summary>Its rate limit, if any.</summary>
    public RateLimit? RateLimit { get; init; }
    /// <summary>Its debounce, if any.</summary>
    public DebounceOptions? Debounce { get; init; }
    /// <summary>Ready runs held back now by a per-key cap or the rate limit (queued, not claimable until a slot or the window frees).</summary>
    public long HeldBack { get; init; }
    /// <summary>The keys holding back the most ready runs, most first (at most 10); the workflow's own rate limit as key <c>""</c>.</summary>
    public IReadOnlyList<HeldBackKey> HeldBackKeys { get; init; } = [];
}

/// <summary>A flow-control key whose ready runs are held back.</summary>
/// <param name="Key">The key (<c>""</c>: runs without a key, held back by the workflow's own rate limit).</param>
/// <param name="Ready">Its ready runs held back.</param>
/// <param name="Running">Its runs running now.</param>
public sealed record HeldBackKey(string Key, long Ready, long Running);

/// <summary>Counts of one queue.</summary>
/// <param name="Name">The queue.</param>
/// <param name="Ready">Runs ready to be claimed.</param>
/// <param name="Scheduled">Runs waiting for their start time.</param>
/// <param name="Running">Runs leased by workers.</param>
public sealed record QueueStats(string Name, long Ready, long Scheduled, long Running);

/// <summary>A live worker.</summary>
/// <param name="App">Its app name.</param>
/// <param name="Node">Its node id.</param>
/// <param name="Queues">The queues it serves.</param>
/// <param name="Concurrency">Its slots.</param>
/// <param name="LastSeen">Its last heartbeat.</param>
public sealed record WorkerInfo(string App, string Node, IReadOnlyList<string> Queues, int Concurrency, DateTimeOffset LastSeen)
{
    /// <summary>The Redflow version the worker runs (its Redflow.Actors package version), when it publishes one.</summary>
    public string? Version { get; init; }
}

/// <summary>Engine-wide counts.</summary>
public sealed record RedflowStats
{
    /// <summary>Per queue counts.</summary>
    public IReadOnlyList<QueueStats> Queues { get; init; } = [];
    /// <summary>Runs by status.</summary>
    public IReadOnlyDictionary<RunStatus, long> RunCounts { get; init; } = new Dictionary<RunStatus, long>();
    /// <summary>Live workers.</summary>
    public IReadOnlyList<WorkerInfo> Workers { get; init; } = [];
    /// <summary>Engine counters (runs started, succeeded, failed, retried, reaped, cron ticks fired and skipped).</summary>
    public IReadOnlyDictionary<string, long> Counters { get; init; } = new Dictionary<string, long>();
}
