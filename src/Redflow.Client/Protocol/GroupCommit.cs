using StackExchange.Redis;

namespace Redflow.Protocol;

/// <summary>
/// Group commit: worker transitions of different runs (step records, completions, failures, suspensions) that are
/// ready at the same moment go to Redis in one <c>batch.lua</c> call, each entry fenced by its own token and answered
/// on its own. One call is in flight per store: a transition that comes while none is goes at once, as its own
/// script, so a quiet worker pays no latency for batching; those that come while a call is in flight are gathered
/// and go together as soon as it returns, at most <see cref="MaxBatch"/> at once. Redis pays its per-call cost
/// (running the script's text, the call's dispatch) once per batch instead of once per transition.
/// A failed call fails each of its entries with the same error; every transition is safe to repeat.
/// </summary>
internal sealed class GroupCommit(Func<Script, RedisValue[], Task<RedisResult>> call)
{
    /// <summary>Entries in one batch at most (a bound on how long one call holds Redis).</summary>
    internal const int MaxBatch = 64;

    private sealed record Entry(string Kind, Script Script, RedisValue[] Args)
    {
        public TaskCompletionSource<RedisResult> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly Lock _gate = new();
    private readonly Queue<Entry> _gathered = new();
    private bool _inFlight;

    /// <summary>Batches handed to Redis so far, and the entries in them (for tests and the bench).</summary>
    public (long Calls, long Entries) Sent => (Interlocked.Read(ref _calls), Interlocked.Read(ref _entries));
    private long _calls;
    private long _entries;

    /// <summary>Runs one transition: <paramref name="kind"/> names its script in <c>batch.lua</c>, <paramref name="script"/> runs it alone.</summary>
    public Task<RedisResult> CallAsync(string kind, Script script, RedisValue[] args)
    {
        var entry = new Entry(kind, script, args);
        lock (_gate)
        {
            if (_inFlight)
            {
                _gathered.Enqueue(entry);
                return entry.Done.Task;
            }
            _inFlight = true;
        }
        _ = SendAsync([entry]);
        return entry.Done.Task;
    }

    private async Task SendAsync(List<Entry> batch)
    {
        while (true)
        {
            Interlocked.Increment(ref _calls);
            Interlocked.Add(ref _entries, batch.Count);
            try
            {
                if (batch.Count == 1)
                {
                    batch[0].Done.TrySetResult(await call(batch[0].Script, batch[0].Args).ConfigureAwait(false));
                }
                else
                {
                    var size = 0;
                    foreach (var e in batch) size += e.Args.Length + 2;
                    var args = new RedisValue[size];
                    var at = 0;
                    foreach (var e in batch)
                    {
                        args[at++] = e.Kind;
                        args[at++] = e.Args.Length;
                        e.Args.CopyTo(args, at);
                        at += e.Args.Length;
                    }
                    var answers = (RedisResult[])(await call(ScriptLibrary.Batch, args).ConfigureAwait(false))!;
                    for (var i = 0; i < batch.Count; i++) batch[i].Done.TrySetResult(answers[i]);
                }
            }
            catch (Exception ex)
            {
                foreach (var e in batch) e.Done.TrySetException(ex);
            }
            lock (_gate)
            {
                if (_gathered.Count == 0)
                {
                    _inFlight = false;
                    return;
                }
                batch = new List<Entry>(Math.Min(_gathered.Count, MaxBatch));
                while (batch.Count < MaxBatch && _gathered.TryDequeue(out var next)) batch.Add(next);
            }
        }
    }
}
