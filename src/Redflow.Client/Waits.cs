namespace Redflow;

/// <summary>Options of a signal or event wait (<see cref="IStepApi.WaitForSignalAsync{T}"/>, <see cref="IStepApi.WaitForEventAsync{T}"/>).</summary>
public sealed record WaitOptions
{
    /// <summary>
    /// Events only: take only events sent with this key (an order id, say). Without one, the wait takes only
    /// events sent without a key. Default null.
    /// </summary>
    public string? Key { get; init; }

    /// <summary>
    /// The wait throws <see cref="RedflowTimeoutException"/> when nothing arrived this long after the wait was first
    /// reached (on the Redis clock; the deadline survives replays). Default null: no timeout.
    /// </summary>
    public TimeSpan? Timeout { get; init; }
}

/// <summary>What a waiting run waits on.</summary>
public enum WaitKind
{
    /// <summary>A child run's end (<see cref="IStepApi.RunWorkflowAsync{TOut}"/>).</summary>
    Child,
    /// <summary>A time (<see cref="IStepApi.SleepAsync"/>, <see cref="IStepApi.SleepUntilAsync"/>).</summary>
    Sleep,
    /// <summary>A signal to the run (<see cref="IRedflowClient.SignalRunAsync"/>).</summary>
    Signal,
    /// <summary>An event by name and key (<see cref="IRedflowClient.SendEventAsync"/>).</summary>
    Event,
}

/// <summary>One wait of a <see cref="RunStatus.Waiting"/> run.</summary>
/// <param name="Step">The step that waits.</param>
/// <param name="Kind">What it waits on.</param>
/// <param name="Name">The child run id, the signal or the event name; null for a sleep.</param>
/// <param name="Key">An event wait's key, if any.</param>
/// <param name="Until">A sleep's wake time, or the instant the wait times out; null without a timeout.</param>
public sealed record WaitInfo(string Step, WaitKind Kind, string? Name, string? Key, DateTimeOffset? Until);

/// <summary>Options of <see cref="IRedflowClient.SendEventAsync"/>.</summary>
public sealed record SendEventOptions
{
    /// <summary>The event's key: only waits with this <see cref="WaitOptions.Key"/> take it. Default null (no key).</summary>
    public string? Key { get; init; }

    /// <summary>
    /// Scoped per event name: a repeat with the same key within <see cref="RedflowClientOptions.EventRetention"/> returns
    /// the first send's <see cref="EventSent.EventId"/> and resumes or starts nothing. Default null.
    /// </summary>
    public string? IdempotencyKey { get; init; }
}

/// <summary>What <see cref="IRedflowClient.SendEventAsync"/> did.</summary>
/// <param name="EventId">The event's id (the first send's, for a repeat with the same idempotency key).</param>
/// <param name="RunsResumed">Waiting runs this event requeued.</param>
/// <param name="RunsStarted">Runs started through <see cref="EventTrigger"/>s.</param>
public sealed record EventSent(string EventId, int RunsResumed, int RunsStarted);

/// <summary>Starts one run of the workflow per event of this name, with the event's payload as its input.</summary>
/// <param name="Name">The event name.</param>
public sealed record EventTrigger(string Name);
