namespace Redflow.Tests;

/// <summary>Counts calls in progress and the most there were at once (to show work ran concurrently, or within a cap).</summary>
internal sealed class PeakCounter
{
    private int _now;
    private int _peak;

    /// <summary>The most calls that were in progress at once.</summary>
    public int Peak => Volatile.Read(ref _peak);

    /// <summary>Runs <paramref name="body"/> counted as one call in progress.</summary>
    public async Task<T> CountAsync<T>(Func<Task<T>> body)
    {
        var now = Interlocked.Increment(ref _now);
        int seen;
        while ((seen = Volatile.Read(ref _peak)) < now && Interlocked.CompareExchange(ref _peak, now, seen) != seen) { }
        try { return await body(); }
        finally { Interlocked.Decrement(ref _now); }
    }
}
