using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Redflow.Runtime;

namespace Redflow;

/// <summary>Settings of the checks added by <see cref="RedflowHealthCheckExtensions.AddRedflowHealthChecks"/>.</summary>
public sealed record RedflowHealthCheckOptions
{
    /// <summary>The tags of the three checks (to filter them in <c>MapHealthChecks</c>). Default <c>["redflow"]</c>.</summary>
    public IReadOnlyList<string> Tags { get; init; } = ["redflow"];

    /// <summary>The status a failing check reports. Default <see cref="HealthStatus.Unhealthy"/>.</summary>
    public HealthStatus FailureStatus { get; init; } = HealthStatus.Unhealthy;

    /// <summary>How long the Redis check waits for its PING. Default 2 s.</summary>
    public TimeSpan PingTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The pollers check fails when a worker's pollers have not finished a claim for this long while it had free
    /// slots. Default null: five fallback polls (<c>5 × BlmoveTimeout</c>), at least 5 s.
    /// </summary>
    public TimeSpan? PollerStaleAfter { get; init; }
}

/// <summary>The names of Redflow's health checks.</summary>
public static class RedflowHealthChecks
{
    /// <summary>Redis answers PING over the workers' and the client's connections, and no worker is in a Redis outage.</summary>
    public const string Redis = "redflow-redis";

    /// <summary>Every worker's queue pollers finish their claims (or all its slots are busy).</summary>
    public const string Pollers = "redflow-pollers";

    /// <summary>Every worker renews its leases on time: degraded after two missed renewals (two thirds of the lease), failing after a whole lease.</summary>
    public const string Leases = "redflow-leases";
}

/// <summary>Registers Redflow's ASP.NET Core health checks.</summary>
public static class RedflowHealthCheckExtensions
{
    /// <summary>
    /// Adds three checks (<see cref="RedflowHealthChecks.Redis"/>, <see cref="RedflowHealthChecks.Pollers"/>,
    /// <see cref="RedflowHealthChecks.Leases"/>) over the workers of this host (started with <c>WithRedflowWorker</c>, or
    /// <see cref="RedflowWorker.StartAsync"/> with <see cref="StartWorkerOptions.Services"/> set to the host's services)
    /// and its <see cref="IRedflowClient"/> (from <see cref="RedflowServiceCollectionExtensions.AddRedflowClient(IServiceCollection, RedflowClientOptions)"/>).
    /// Without a worker, the pollers and leases checks are healthy (there is nothing to check); without a worker and a
    /// client, the Redis check fails.
    /// </summary>
    public static IHealthChecksBuilder AddRedflowHealthChecks(this IHealthChecksBuilder builder, RedflowHealthCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        options ??= new RedflowHealthCheckOptions();
        builder.Services.TryAddSingleton<RedflowWorkers>();
        builder.Add(new HealthCheckRegistration(RedflowHealthChecks.Redis,
            sp => new RedisHealthCheck(sp.GetRequiredService<RedflowWorkers>(), sp.GetService<IRedflowClient>(), options), options.FailureStatus, options.Tags));
        builder.Add(new HealthCheckRegistration(RedflowHealthChecks.Pollers,
            sp => new PollersHealthCheck(sp.GetRequiredService<RedflowWorkers>(), options), options.FailureStatus, options.Tags));
        builder.Add(new HealthCheckRegistration(RedflowHealthChecks.Leases,
            sp => new LeasesHealthCheck(sp.GetRequiredService<RedflowWorkers>()), options.FailureStatus, options.Tags));
        return builder;
    }
}

/// <summary>The workers running in this host (registered by <see cref="RedflowRuntime"/> when the host's services have this).</summary>
internal sealed class RedflowWorkers
{
    private readonly Lock _gate = new();
    private readonly List<RedflowRuntime> _workers = [];

    public void Add(RedflowRuntime worker)
    {
        lock (_gate) _workers.Add(worker);
    }

    public void Remove(RedflowRuntime worker)
    {
        lock (_gate) _workers.Remove(worker);
    }

    public IReadOnlyList<RedflowRuntime> Snapshot()
    {
        lock (_gate) return [.. _workers];
    }
}

internal sealed class RedisHealthCheck(RedflowWorkers workers, IRedflowClient? client, RedflowHealthCheckOptions options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var running = workers.Snapshot();
        var pings = new List<(string Who, Func<CancellationToken, Task<TimeSpan>> Ping)>();
        foreach (var worker in running) pings.Add(($"worker {worker.Node}", worker.PingAsync));
        if (client is RedisRedflowClient redis) pings.Add(("client", redis.PingAsync));
        if (pings.Count == 0)
            return new HealthCheckResult(context.Registration.FailureStatus, "No Redflow worker or client is registered in this host's services.");

        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var worker in running.Where(w => !w.Health.RedisConnected))
            problems.Add($"worker {worker.Node} lost Redis {worker.Health.DisconnectedFor.TotalSeconds:0.0} s ago, while {worker.Health.LostWhile}");
        foreach (var (who, ping) in pings)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.PingTimeout);
            try
            {
                var rtt = await ping(timeout.Token).ConfigureAwait(false);
                data[who] = $"{rtt.TotalMilliseconds:0.0} ms";
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                problems.Add($"{who}: PING failed ({(ex is OperationCanceledException ? $"no answer within {options.PingTimeout}" : WorkerHealth.Describe(ex))})");
            }
        }
        return problems.Count == 0
            ? HealthCheckResult.Healthy("Redis answers PING.", data)
            : new HealthCheckResult(context.Registration.FailureStatus, string.Join("; ", problems), data: data);
    }
}

internal sealed class PollersHealthCheck(RedflowWorkers workers, RedflowHealthCheckOptions options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var running = workers.Snapshot();
        if (running.Count == 0) return Task.FromResult(HealthCheckResult.Healthy("No Redflow worker runs in this host."));
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var worker in running)
        {
            var since = worker.Health.SinceLastPoll;
            var limit = options.PollerStaleAfter ?? TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(5).Ticks, worker.Options.BlmoveTimeout.Ticks * 5));
            data[worker.Node] = $"last claim {since.TotalSeconds:0.0} s ago";
            if (since > limit) problems.Add($"worker {worker.Node}: no claim finished for {since.TotalSeconds:0.0} s (limit {limit.TotalSeconds:0.0} s)");
        }
        return Task.FromResult(problems.Count == 0
            ? HealthCheckResult.Healthy("The queue pollers claim on time.", data)
            : new HealthCheckResult(context.Registration.FailureStatus, string.Join("; ", problems), data: data));
    }
}

internal sealed class LeasesHealthCheck(RedflowWorkers workers) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var running = workers.Snapshot();
        if (running.Count == 0) return Task.FromResult(HealthCheckResult.Healthy("No Redflow worker runs in this host."));
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var failing = new List<string>();
        var late = new List<string>();
        foreach (var worker in running)
        {
            var since = worker.Health.SinceLastRenewal;
            var lease = worker.Options.Lease;
            data[worker.Node] = $"last renewal {since.TotalSeconds:0.0} s ago (lease {lease.TotalSeconds:0.0} s)";
            if (since > lease) failing.Add($"worker {worker.Node}: no lease renewal for {since.TotalSeconds:0.0} s, longer than the lease ({lease.TotalSeconds:0.0} s)");
            else if (since > lease * 2 / 3) late.Add($"worker {worker.Node}: lease renewal late ({since.TotalSeconds:0.0} s since the last, renewed every {(lease / 3).TotalSeconds:0.0} s)");
        }
        if (failing.Count > 0) return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, string.Join("; ", failing.Concat(late)), data: data));
        if (late.Count > 0) return Task.FromResult(HealthCheckResult.Degraded(string.Join("; ", late), data: data));
        return Task.FromResult(HealthCheckResult.Healthy("Leases are renewed on time.", data));
    }
}
