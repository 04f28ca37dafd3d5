using Redflow.Protocol;

namespace Redflow;

/// <summary>Who holds a running run's lease.</summary>
/// <param name="Node">The worker node id holding the lease.</param>
/// <param name="App">The app name of that worker, when its heartbeat is still in Redis.</param>
/// <param name="Deadline">When the lease runs out unless renewed (Redis clock).</param>
public sealed record RunLease(string Node, string? App, DateTimeOffset? Deadline)
{
    /// <summary>
    /// The step the run was in at its worker's last lease renewal (every third of the lease), or null when it was between
    /// steps, waiting, or not renewed yet since its claim. With parallel steps, the one started last.
    /// </summary>
    public string? CurrentStep { get; init; }
}

/// <summary>Counts of one workflow on one queue.</summary>
/// <param name="Queue">The queue.</param>
/// <param name="Workflow">The workflow.</param>
/// <param name="Ready">Its runs ready to be claimed on this queue.</param>
/// <param name="Scheduled">Its runs waiting for their start time (all queues).</param>
/// <param name="Running">Its runs running (all queues).</param>
/// <param name="Waiting">Its runs suspended on a wait (all queues).</param>
public sealed record QueueWorkflowStats(string Queue, string Workflow, long Ready, long Scheduled, long Running, long Waiting);

/// <summary>A failed attempt of a run that was retried (its attempt history; the error a run ended with is <see cref="RunRecord.Error"/>).</summary>
/// <param name="Attempt">The attempt that failed, 1-based.</param>
/// <param name="FailedAt">When it failed (Redis clock).</param>
/// <param name="Error">Its error, with the stack trace.</param>
public sealed record FailedAttempt(int Attempt, DateTimeOffset FailedAt, RunError Error)
{
    /// <summary>The worker node that ran the attempt.</summary>
    public string? Worker { get; init; }

    /// <summary>When the attempt's lease started (Redis clock): the claim that ran it, or the takeover after a worker died.</summary>
    public DateTimeOffset? StartedAt { get; init; }
}

/// <summary>
/// Inspection reads beyond <see cref="IRedflowClient"/>'s own, for dashboards and tools: lease holders, idempotency
/// keys, per-workflow queue counts, leases per worker. They need a client made by <see cref="RedflowClient.Create(RedflowClientOptions)"/>.
/// </summary>
public static class RedflowInspection
{
    /// <summary>Who holds a running run's lease and until when; null when the run is not running (or unknown).</summary>
    /// <param name="client">A client made by <see cref="RedflowClient"/>.</param>
    /// <param name="runId">The run id.</param>
    /// <param name="cancellationToken">Stops waiting for Redis.</param>
    public static async Task<RunLease?> GetRunLeaseAsync(this IRedflowClient client, string runId, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync(client).ConfigureAwait(false);
        return await store.GetLeaseAsync(Names.Check(runId, "run id")).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The runs an idempotency key names (one per workflow that has it), while the key is retained.</summary>
    /// <param name="client">A client made by <see cref="RedflowClient"/>.</param>
    /// <param name="idempotencyKey">The key, as given at emit.</param>
    /// <param name="cancellationToken">Stops waiting for Redis.</param>
    public static async Task<IReadOnlyList<string>> FindRunsByIdempotencyKeyAsync(this IRedflowClient client, string idempotencyKey, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync(client).ConfigureAwait(false);
        return await store.FindByIdempotencyKeyAsync(Names.Check(idempotencyKey, "idempotency key")).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Per queue and workflow: ready, scheduled, running and waiting runs.</summary>
    /// <param name="client">A client made by <see cref="RedflowClient"/>.</param>
    /// <param name="cancellationToken">Stops waiting for Redis.</param>
    public static async Task<IReadOnlyList<QueueWorkflowStats>> GetQueueWorkflowStatsAsync(this IRedflowClient client, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync(client).ConfigureAwait(false);
        return await store.QueueWorkflowStatsAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>How many leases each worker node holds now (its slots in use), by node id.</summary>
    /// <param name="client">A client made by <see cref="RedflowClient"/>.</param>
    /// <param name="cancellationToken">Stops waiting for Redis.</param>
    public static async Task<IReadOnlyDictionary<string, int>> GetLeasesPerWorkerAsync(this IRedflowClient client, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync(client).ConfigureAwait(false);
        return await store.LeasesPerNodeAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The failed attempts of a run that were retried, oldest first (empty for a run that never retried).</summary>
    /// <param name="client">A client made by <see cref="RedflowClient"/>.</param>
    /// <param name="runId">The run id.</param>
    /// <param name="cancellationToken">Stops waiting for Redis.</param>
    public static async Task<IReadOnlyList<FailedAttempt>> GetFailedAttemptsAsync(this IRedflowClient client, string runId, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync(client).ConfigureAwait(false);
        var attempts = await store.GetAttemptErrorsAsync(Names.Check(runId, "run id")).WaitAsync(cancellationToken).ConfigureAwait(false);
        return attempts.Select(a => new FailedAttempt(a.Attempt, a.FailedAt, a.Error) { Worker = a.Worker, StartedAt = a.StartedAt }).ToList();
    }

    /// <summary>
    /// Pauses a cron trigger: every worker's cron actor fires nothing for it until it is resumed, and the instants
    /// that pass meanwhile are skipped (not fired when it is resumed). Idempotent. The state is kept in Redis.
    /// </summary>
    /// <param name="client">A client made by <see cref="RedflowClient"/>.</param>
    /// <param name="workflow">The workflow the trigger belongs to.</param>
    /// <param name="triggerId">The trigger id (<see cref="CronTriggerInfo.Id"/>).</param>
    /// <param name="cancellationToken">Stops waiting for Redis.</param>
    /// <returns>True when it was paused now, false when it was paused already.</returns>
    /// <exception cref="ArgumentException">The workflow is not registered, or has no trigger with that id (nothing is written).</exception>
    public static Task<bool> PauseCronTriggerAsync(this IRedflowClient client, string workflow, string triggerId, CancellationToken cancellationToken = default) =>
        SetCronPausedAsync(client, workflow, triggerId, true, cancellationToken);

    /// <summary>
    /// Resumes a paused cron trigger: it fires again from its next instant after now; the instants that passed while it
    /// was paused are not fired (whatever its misfire policy). Idempotent.
    /// </summary>
    /// <param name="client">A client made by <see cref="RedflowClient"/>.</param>
    /// <param name="workflow">The workflow the trigger belongs to.</param>
    /// <param name="triggerId">The trigger id (<see cref="CronTriggerInfo.Id"/>).</param>
    /// <param name="cancellationToken">Stops waiting for Redis.</param>
    /// <returns>True when it was resumed now, false when it was not paused.</returns>
    /// <exception cref="ArgumentException">The workflow is not registered, or has no trigger with that id (nothing is written).</exception>
    public static Task<bool> ResumeCronTriggerAsync(this IRedflowClient client, string workflow, string triggerId, CancellationToken cancellationToken = default) =>
        SetCronPausedAsync(client, workflow, triggerId, false, cancellationToken);

    /// <summary>
    /// "Trigger now": emits one run of the workflow with the trigger's own input, now, as an ordinary emit (no
    /// idempotency key: each call starts a run). A paused trigger can be triggered too; its schedule is not changed.
    /// </summary>
    /// <param name="client">A client made by <see cref="RedflowClient"/>.</param>
    /// <param name="workflow">The workflow the trigger belongs to.</param>
    /// <param name="triggerId">The trigger id (<see cref="CronTriggerInfo.Id"/>).</param>
    /// <param name="cancellationToken">Stops waiting for Redis.</param>
    /// <returns>The run it started.</returns>
    /// <exception cref="ArgumentException">
    /// The workflow is not registered, has no trigger with that id, or its workers do not publish the trigger's input
    /// (a version before it was published); nothing is written.
    /// </exception>
    public static async Task<RunHandle> TriggerCronNowAsync(this IRedflowClient client, string workflow, string triggerId, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync(client).ConfigureAwait(false);
        Names.Check(workflow, "workflow name");
        Names.Check(triggerId, "cron trigger id");
        var triggers = await store.PublishedCronAsync(workflow).WaitAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new ArgumentException($"Workflow '{workflow}' is not registered.", nameof(workflow));
        var trigger = triggers.FirstOrDefault(t => t.Id == triggerId)
            ?? throw new ArgumentException(NoTrigger(workflow, triggerId, triggers), nameof(triggerId));
        var input = trigger.Input
            ?? throw new ArgumentException($"The workers of workflow '{workflow}' do not publish the input of cron trigger '{triggerId}' (they run an older Redflow): upgrade them to trigger it now.", nameof(triggerId));
        var redis = (RedisRedflowClient)client;
        var id = await redis.EmitAsync(new EmitRequest(workflow, input), cancellationToken).ConfigureAwait(false);
        return new RunHandle(redis, id);
    }

    private static async Task<bool> SetCronPausedAsync(IRedflowClient client, string workflow, string triggerId, bool paused, CancellationToken cancellationToken)
    {
        var store = await StoreAsync(client).ConfigureAwait(false);
        Names.Check(workflow, "workflow name");
        Names.Check(triggerId, "cron trigger id");
        var outcome = await store.CronSetPausedAsync(workflow, triggerId, paused).WaitAsync(cancellationToken).ConfigureAwait(false);
        return outcome switch
        {
            1 => true,
            0 => false,
            -1 => throw new ArgumentException($"Workflow '{workflow}' is not registered.", nameof(workflow)),
            _ => throw new ArgumentException(NoTrigger(workflow, triggerId,
                await store.PublishedCronAsync(workflow).WaitAsync(cancellationToken).ConfigureAwait(false) ?? []), nameof(triggerId)),
        };
    }

    private static string NoTrigger(string workflow, string triggerId, IReadOnlyList<PublishedCron> triggers) =>
        $"Workflow '{workflow}' has no cron trigger '{triggerId}' " +
        (triggers.Count == 0 ? "(it has no cron triggers)." : $"(its triggers: {string.Join(", ", triggers.Select(t => $"'{t.Id}'"))}).");

    private static Task<RedisStore> StoreAsync(IRedflowClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        return client is RedisRedflowClient redis
            ? redis.StoreAsync()
            : throw new NotSupportedException($"{client.GetType().Name} is not a client made by RedflowClient.Create; these reads need one.");
    }
}
