using Microsoft.Extensions.Logging;

namespace Redflow.Runtime;

/// <summary>
/// What one worker knows about its own health, shared by its actors (written from actor threads, read by health
/// checks from any thread). Redis reachability is one state for the whole worker: the first failed Redis call after
/// a success logs one warning naming what it was doing, later failures log nothing, and the first success after that
/// logs one line with how long Redis was unreachable. Actors report every call's outcome here instead of logging
/// Redis errors themselves, so an outage writes two lines per worker, not a stack trace per actor per interval.
/// </summary>
internal sealed class WorkerHealth(ILogger logger, string node)
{
    private readonly Lock _gate = new();
    private long _disconnectedSinceMs; // 0 while connected
    private long _lastPollMs = Environment.TickCount64;
    private long _lastRenewalMs = Environment.TickCount64;
    private long _disconnects;

    /// <summary>False from the first failed Redis call until the next successful one.</summary>
    public bool RedisConnected => Interlocked.Read(ref _disconnectedSinceMs) == 0;

    /// <summary>How long Redis has been unreachable, or zero while connected.</summary>
    public TimeSpan DisconnectedFor
    {
        get
        {
            var since = Interlocked.Read(ref _disconnectedSinceMs);
            return since == 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Environment.TickCount64 - since);
        }
    }

    /// <summary>How many times this worker lost Redis since it started.</summary>
    public long Disconnects => Interlocked.Read(ref _disconnects);

    /// <summary>What the worker was doing when it lost Redis (null while connected).</summary>
    public string? LostWhile { get; private set; }

    /// <summary>Time since a poller last finished a claim (successful or empty): the pollers are alive.</summary>
    public TimeSpan SinceLastPoll => TimeSpan.FromMilliseconds(Environment.TickCount64 - Interlocked.Read(ref _lastPollMs));

    /// <summary>Time since the lease renewer last renewed (or had nothing to renew): renewal is on time.</summary>
    public TimeSpan SinceLastRenewal => TimeSpan.FromMilliseconds(Environment.TickCount64 - Interlocked.Read(ref _lastRenewalMs));

    /// <summary>A Redis call succeeded.</summary>
    public void RedisOk()
    {
        if (Interlocked.Read(ref _disconnectedSinceMs) == 0) return;
        lock (_gate)
        {
            var since = _disconnectedSinceMs;
            if (since == 0) return;
            Interlocked.Exchange(ref _disconnectedSinceMs, 0);
            logger.LogWarning("Worker {Node}: Redis is reachable again after {Seconds:0.0} s", node, (Environment.TickCount64 - since) / 1000.0);
            LostWhile = null;
        }
        RedflowTelemetry.RedisReconnects.Add(1);
    }

    /// <summary>
    /// A Redis call failed while doing <paramref name="what"/> (a short phrase: "claiming runs on queues 'q'"). An outage
    /// (no connection, a timeout, a server loading its data or failing over) is logged once, when the worker loses
    /// Redis; any other error (a bug, a script error) is logged each time, with its stack trace.
    /// </summary>
    public void Failed(string what, Exception error)
    {
        if (!IsOutage(error))
        {
            logger.LogWarning(error, "Worker {Node}: {What} failed", node, what);
            return;
        }
        if (Interlocked.Read(ref _disconnectedSinceMs) != 0) return;
        lock (_gate)
        {
            if (_disconnectedSinceMs != 0) return;
            Interlocked.Exchange(ref _disconnectedSinceMs, Math.Max(1, Environment.TickCount64));
            Interlocked.Increment(ref _disconnects);
            LostWhile = what;
            logger.LogWarning("Worker {Node}: lost Redis while {What} ({Error}); backing off until it is back", node, what, Describe(error));
        }
        RedflowTelemetry.RedisDisconnects.Add(1);
    }

    /// <summary>Whether an error means Redis is unreachable or not serving for now, rather than a fault of the call.</summary>
    internal static bool IsOutage(Exception error) => Unwrap(error) switch
    {
        StackExchange.Redis.RedisConnectionException or StackExchange.Redis.RedisTimeoutException or TimeoutException => true,
        StackExchange.Redis.RedisServerException e => e.Message.StartsWith("LOADING", StringComparison.Ordinal)
            || e.Message.StartsWith("BUSY", StringComparison.Ordinal) || e.Message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
            || e.Message.StartsWith("CLUSTERDOWN", StringComparison.Ordinal) || e.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal)
            || e.Message.StartsWith("READONLY", StringComparison.Ordinal),
        ObjectDisposedException => true, // the connection is being disposed: the worker is stopping
        _ => false,
    };

    private static Exception Unwrap(Exception error) =>
        error is AggregateException { InnerExceptions.Count: 1 } a ? Unwrap(a.InnerException!) : error;

    /// <summary>A poller's claim came back (with or without runs).</summary>
    public void Polled() => Interlocked.Exchange(ref _lastPollMs, Environment.TickCount64);

    /// <summary>The lease renewer renewed its leases (or held none).</summary>
    public void Renewed() => Interlocked.Exchange(ref _lastRenewalMs, Environment.TickCount64);

    /// <summary>The error in one short line, without a stack trace: its type and the first sentence of its message.</summary>
    internal static string Describe(Exception error)
    {
        var e = Unwrap(error);
        var message = e.Message;
        var end = message.IndexOfAny(['\r', '\n']);
        if (end >= 0) message = message[..end];
        foreach (var cut in new[] { " - ", "; ", " (" }) // StackExchange.Redis appends its diagnostics after these
        {
            var at = message.IndexOf(cut, StringComparison.Ordinal);
            if (at > 0) message = message[..at];
        }
        if (message.Length > 160) message = message[..160] + "...";
        return $"{e.GetType().Name}: {message}";
    }
}
