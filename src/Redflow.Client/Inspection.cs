using Redflow.Protocol;

namespace Redflow;

/// <summary>Who holds a running run's lease.</summary>
/// <param name="Node">The worker node id holding the lease.</param>
/// <param name="App">The app name of that worker, when its heartbeat is still in Redis.</param>
/// <param name="Deadline">When the lease runs out unless renewed (Redis clock).</param>
public sealed record RunLease(string Node, string? App, DateTimeOffset? Deadline);

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
public sealed record FailedAttempt(int Attempt, DateTimeOffset FailedAt, RunError Error);

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
        return attempts.Select(a => new FailedAttempt(a.Attempt, a.FailedAt, a.Error)).ToList();
    }

    private static Task<RedisStore> StoreAsync(IRedflowClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        return client is RedisRedflowClient redis
            ? redis.StoreAsync()
            : throw new NotSupportedException($"{client.GetType().Name} is not a client made by RedflowClient.Create; these reads need one.");
    }
}
