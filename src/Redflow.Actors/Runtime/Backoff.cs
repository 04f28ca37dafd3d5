namespace Redflow.Runtime;

/// <summary>
/// The one backoff of the runtime, for a Redis call retried after a failure (a write retried in place, a claim, a
/// reap, a cron tick): 100 ms doubling per failure in a row, up to a cap, so an outage does not spin.
/// </summary>
internal static class Backoff
{
    /// <summary>The cap of a write retried in place (its lease is running out meanwhile).</summary>
    public static readonly TimeSpan WriteCap = TimeSpan.FromSeconds(2);

    /// <summary>The cap of a periodic call (claims, reaps, cron ticks) while Redis is unreachable.</summary>
    public static readonly TimeSpan PollCap = TimeSpan.FromSeconds(5);

    /// <summary>The delay after the <paramref name="failures"/>-th failure in a row (1-based), at most <paramref name="cap"/> (default <see cref="WriteCap"/>).</summary>
    public static TimeSpan Delay(int failures, TimeSpan? cap = null) =>
        TimeSpan.FromMilliseconds(Math.Min((cap ?? WriteCap).TotalMilliseconds, 100 * Math.Pow(2, Math.Clamp(failures - 1, 0, 16))));
}

/// <summary>
/// The timer of an actor's periodic Redis call (a reap, a cron tick) that backs off while the call fails: a failure
/// reports to the worker's health and replaces the period by one retry after <see cref="Backoff.Delay"/>; the next
/// success reports that Redis is back and restores the period. Made in the actor's PreStart (its timers are set then);
/// the timer's key is <paramref name="what"/>.
/// </summary>
internal sealed class PeriodicCall(Akka.Actor.ITimerScheduler timers, WorkerHealth health, string what, object message, TimeSpan interval)
{
    private int _failures;

    /// <summary>Starts the period.</summary>
    public void Start() => timers.StartPeriodicTimer(what, message, interval);

    /// <summary>The call succeeded.</summary>
    public void Succeeded()
    {
        health.RedisOk();
        if (_failures == 0) return;
        _failures = 0;
        Start();
    }

    /// <summary>The call failed with <paramref name="error"/>.</summary>
    public void Failed(Exception error)
    {
        health.Failed(what, error);
        timers.StartSingleTimer(what, message, Backoff.Delay(++_failures, Backoff.PollCap));
    }
}
