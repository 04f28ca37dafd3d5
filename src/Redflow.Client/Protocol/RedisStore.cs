using System.Globalization;
using System.Text.Json;
using StackExchange.Redis;

namespace Redflow.Protocol;

/// <summary>What a run-transition script said.</summary>
internal enum WriteOutcome
{
    /// <summary>Written.</summary>
    Ok,
    /// <summary>A repeat of a call that already took effect: nothing written.</summary>
    AlreadyDone,
    /// <summary>The caller no longer holds the run's lease: nothing written.</summary>
    Fenced,
}

/// <summary>A run leased by a claim, with the step results recorded by earlier attempts; <paramref name="Woken"/>: a satisfied wait requeued it.</summary>
internal sealed record ClaimedRun(
    string Id, string Token, long LeaseDeadlineMs, string Workflow, string Queue, string Input,
    int Attempt, int MaxAttempts, int Resumes, IReadOnlyDictionary<string, CachedStep> CachedSteps, string TraceParent = "", long CreatedAtMs = 0,
    bool Woken = false);

/// <summary>
/// A step's record as a replay serves it: its place among the run's records (<paramref name="Seq"/>: replays hand results
/// back in that order), its output JSON, or the error of a wait that timed out (<paramref name="TimedOut"/>), and what kind
/// of wait recorded it (null for a <c>RunAsync</c> step).
/// </summary>
internal sealed record CachedStep(long Seq, string Output, WaitKind? Kind = null, bool TimedOut = false, RunError? Error = null);

/// <summary>Positions in a leased run as the claim and complete scripts answer it (<c>leased_entry</c> in <c>_lib.lua</c>, 0-based here).</summary>
internal static class ClaimedField
{
    public const int Id = 0, Token = 1, LeaseDeadline = 2, Workflow = 3, Input = 4, Attempt = 5, MaxAttempts = 6,
        Resumes = 7, Queue = 8, Steps = 9, TraceParent = 10, CreatedAt = 11, Woken = 12;
}

/// <summary>A wait a handler reached (wait.lua): step, kind, what it waits on, and its duration or time.</summary>
internal sealed record WaitRequest(string Step, WaitKind Kind, string? Name)
{
    /// <summary>An event wait's key.</summary>
    public string? Key { get; init; }
    /// <summary>A sleep's duration, or a wait's timeout, counted from when the step first waited.</summary>
    public TimeSpan? Relative { get; init; }
    /// <summary>A SleepUntil's time.</summary>
    public DateTimeOffset? Until { get; init; }
}

/// <summary>How a wait stands (wait.lua).</summary>
internal enum WaitState { Satisfied, TimedOut, Pending, ChildFailed, ChildCanceled, ChildMissing, Fenced }

/// <summary>What wait.lua answered: the state, the payload (output JSON, a child's error JSON or cancel reason), a pending wait's deadline, or the step's earlier record.</summary>
internal sealed record WaitAnswer(WaitState State, string? Payload = null, long? DeadlineMs = null, CachedStep? Recorded = null);

/// <summary>A wait of a handler that is about to be suspended, with the deadline wait.lua gave it.</summary>
internal sealed record PendingWait(WaitRequest Request, long? DeadlineMs);

/// <summary>What suspend.lua did.</summary>
internal enum SuspendOutcome { Waiting, Ready, Fenced }

/// <summary>An event to send (send_event.lua).</summary>
internal sealed record NewEvent(string EventId, string Name, string PayloadJson)
{
    public string? Key { get; init; }
    public string? IdempotencyKey { get; init; }
    public TimeSpan Retention { get; init; } = TimeSpan.FromHours(24);
    public string TraceParent { get; init; } = "";
}

/// <summary>A run to create (emit.lua). Nulls take the workflow's registered queue and attempts, now, and no key.</summary>
internal sealed record NewRun(string RunId, string Workflow, string InputJson)
{
    public string? Queue { get; init; }
    public int? MaxAttempts { get; init; }
    public DateTimeOffset? RunAt { get; init; }
    public TimeSpan? Delay { get; init; }
    public string? IdempotencyKey { get; init; }
    public TimeSpan IdempotencyWindow { get; init; } = TimeSpan.FromHours(24);
    public string? ParentRunId { get; init; }
    public string? RerunOf { get; init; }
    public string TraceParent { get; init; } = "";
    public int Priority { get; init; }
    public string? Key { get; init; }
}

/// <summary>
/// A failed attempt to record (fail.lua): retried after <see cref="Delay"/> while attempts remain and it is
/// <see cref="Retriable"/>, else failed for good. <see cref="FailedStep"/> names the step whose function threw, if any.
/// </summary>
internal sealed record AttemptFailure(string RunId, string Token, RunError Error, int Attempt)
{
    public bool Retriable { get; init; } = true;
    public TimeSpan Delay { get; init; }
    public string? FailedStep { get; init; }
    public TimeSpan StepRan { get; init; }
    /// <summary>How long a pending OnFailure call stays with this worker before others may make it.</summary>
    public TimeSpan Lease { get; init; }
}

/// <summary>Asks a completing script to claim the next run for the freed slot.</summary>
internal sealed record NextRunRequest(TimeSpan Lease, string Worker, IReadOnlyList<string> Queues);

/// <summary>The answer of a fail-or-retry call.</summary>
internal sealed record FailResult(WriteOutcome Outcome, bool WillRetry, int NextAttempt);

/// <summary>What one reap did.</summary>
internal sealed record ReapResult(int Promoted, int Reclaimed, int Purged, int Canceled, int Woken = 0);

/// <summary>An OnFailure call still to make.</summary>
internal sealed record PendingOnFailure(RunInfo Run, string Input, RunError Error);

/// <summary>One workflow's metadata as a worker publishes it.</summary>
internal sealed record WorkflowRegistration(string Name, string Queue, int MaxConcurrency, int MaxAttempts, TimeSpan Retention, bool HasOnFailure, string CronJson, string EventTriggers = "")
{
    public int? MaxConcurrencyPerKey { get; init; }
    public RateLimit? RateLimit { get; init; }
    public DebounceOptions? Debounce { get; init; }
}

/// <summary>The opt-in durability wait: after a write, <c>WAIT</c> until this many replicas have it, at most this long.</summary>
internal sealed record ReplicaWait(int Replicas, TimeSpan Timeout);

/// <summary>
/// The Redis protocol: one method per script (every state change of a run is one script call that
/// checks the fencing token), plus the plain reads. Keys come from <see cref="Keys"/> only.
/// With <paramref name="replicaWait"/>, emit, step records and completion are followed by <c>WAIT</c> on the
/// primary that ran the script (WAIT cannot run inside a script).
/// </summary>
internal sealed partial class RedisStore(IConnectionMultiplexer redis, Keys keys, ReplicaWait? replicaWait = null)
{
    private readonly RedisKey[] _base = [keys.Base];

    public Keys Keys { get; } = keys;

    public IConnectionMultiplexer Redis { get; } = redis;

    private IDatabase Db => Redis.GetDatabase();

    private Task<RedisResult> CallAsync(Script script, params RedisValue[] args) => Db.EvaluateAsync(script, _base, args);

    /// <summary>Worker transitions go through group commit (batched with other runs' transitions while a call is in flight).</summary>
    internal GroupCommit Group { get; } = new((script, args) => redis.GetDatabase().EvaluateAsync(script, [keys.Base], args));

    /// <summary>
    /// The primary that owns the namespace's slot (the server every script of this prefix runs on). The cast matters:
    /// the string overload of <c>GetServer</c> reads its argument as host:port.
    /// </summary>
    private IServer SlotOwner => Redis.GetServer((RedisKey)Keys.Base);

    /// <summary>The opt-in replica wait, or null when off.</summary>
    public ReplicaWait? ReplicaWait { get; } = replicaWait;

    /// <summary>
    /// With <see cref="ReplicaWait"/> set: <c>WAIT numreplicas timeout</c> on the connection to the primary of the
    /// namespace's slot, the connection the script just ran on, so it covers that write (and every earlier one on it).
    /// Throws <see cref="RedflowException"/> when fewer replicas acknowledged in time: the write is on the primary but
    /// may not survive its failover. Every caller repeats its script safely (a repeat returns "already done") and waits again.
    /// </summary>
    private async Task WaitForReplicasAsync(string what, string retry = "Repeating the call is safe.")
    {
        if (ReplicaWait is not { } wait) return;
        var acked = (long)await SlotOwner.ExecuteAsync("WAIT", wait.Replicas, (long)wait.Timeout.TotalMilliseconds).ConfigureAwait(false);
        if (acked < wait.Replicas)
            throw new RedflowException($"The {what} was written to the Redis primary, but only {acked} of {wait.Replicas} replicas acknowledged it within {wait.Timeout.TotalMilliseconds:0} ms (WaitForReplicas): it may be lost if that primary fails over. {retry}");
    }

    // ---- emit -------------------------------------------------------------------------------------

    public async Task<(string RunId, bool Created)> EmitAsync(NewRun run)
    {
        // Concurrent emits of this client go together (group commit); each returns once its own run is in Redis (G1).
        var r = (RedisResult[])(await Group.CallAsync("emit", ScriptLibrary.Emit, [
            run.RunId, run.Workflow, run.InputJson, run.Queue ?? "", run.MaxAttempts?.ToString(CultureInfo.InvariantCulture) ?? "",
            run.RunAt is { } at ? at.ToUnixTimeMilliseconds() : "", run.Delay is { } d ? (long)d.TotalMilliseconds : "",
            run.IdempotencyKey ?? "", (long)run.IdempotencyWindow.TotalMilliseconds, run.ParentRunId ?? "", run.RerunOf ?? "", run.TraceParent,
            run.Priority == 0 ? "" : run.Priority.ToString(CultureInfo.InvariantCulture), run.Key ?? ""]).ConfigureAwait(false))!;
        var kind = (string)r[0]!;
        if (kind == "unknown")
            throw new UnknownWorkflowException(run.Workflow, r.Skip(1).Select(x => (string)x!).ToList());
        if (kind == "invalid") throw new ArgumentException((string)r[1]!, nameof(EmitOptions));
        await WaitForReplicasAsync($"emit of run {(string)r[1]!}",
            "Emitting again with the same IdempotencyKey is safe (it returns this run); without one it makes a second run.").ConfigureAwait(false);
        return ((string)r[1]!, kind == "created");
    }

    // ---- worker transitions ----------------------------------------------------------------------

    public Task<IReadOnlyList<ClaimedRun>> ClaimAsync(string queue, int max, string worker, TimeSpan lease, string requestId, int abandonAfter) =>
        ClaimAsync([queue], max, worker, lease, requestId, abandonAfter);

    /// <summary>
    /// Leases up to <paramref name="max"/> ready runs of a worker's <paramref name="queues"/> in one call, an earlier
    /// queue served first; a repeat with the same <paramref name="requestId"/> answers what the first call leased.
    /// </summary>
    public async Task<IReadOnlyList<ClaimedRun>> ClaimAsync(IReadOnlyList<string> queues, int max, string worker, TimeSpan lease, string requestId, int abandonAfter)
    {
        var args = new RedisValue[5 + queues.Count];
        args[0] = queues[0];
        (args[1], args[2], args[3], args[4]) = (max, worker, (long)lease.TotalMilliseconds, requestId);
        args[5] = abandonAfter;
        for (var i = 1; i < queues.Count; i++) args[5 + i] = queues[i];
        return ParseClaimed((RedisResult[])(await CallAsync(ScriptLibrary.Claim, args).ConfigureAwait(false))!);
    }

    /// <summary>Runs as the claim scripts return them (claim_from in _lib.lua).</summary>
    private static List<ClaimedRun> ParseClaimed(RedisResult[] items)
    {
        var runs = new List<ClaimedRun>(items.Length);
        foreach (var item in items)
        {
            var f = (RedisResult[])item!;
            var stepPairs = (RedisResult[])f[ClaimedField.Steps]!;
            var cached = new Dictionary<string, CachedStep>(StringComparer.Ordinal);
            for (var i = 0; i + 1 < stepPairs.Length; i += 2)
                if (ParseCached((string)stepPairs[i + 1]!) is { } step) cached[(string)stepPairs[i]!] = step;
            runs.Add(new ClaimedRun((string)f[ClaimedField.Id]!, (string)f[ClaimedField.Token]!,
                long.Parse((string)f[ClaimedField.LeaseDeadline]!, CultureInfo.InvariantCulture),
                (string)f[ClaimedField.Workflow]!, (string)f[ClaimedField.Queue]!, (string?)f[ClaimedField.Input] ?? RedflowJson.Null,
                Int(f[ClaimedField.Attempt]), Int(f[ClaimedField.MaxAttempts]), Int(f[ClaimedField.Resumes]), cached,
                (string?)f[ClaimedField.TraceParent] ?? "", long.Parse((string)f[ClaimedField.CreatedAt]!, CultureInfo.InvariantCulture),
                f.Length > ClaimedField.Woken && (string?)f[ClaimedField.Woken] == "1"));
        }
        return runs;
    }

    /// <summary>
    /// Renews leases of <paramref name="worker"/> (which is seen alive by it); returns the new deadline and, per run,
    /// 0 lost, 1 renewed, 2 renewed with a cancel request. Each run's current step (null between steps) is recorded for inspection.
    /// </summary>
    public async Task<(long DeadlineMs, int[] Codes)> RenewAsync(TimeSpan lease, string worker, IReadOnlyList<(string RunId, string Token, string? Step)> runs)
    {
        var args = new RedisValue[2 + runs.Count * 3];
        args[0] = (long)lease.TotalMilliseconds;
        args[1] = worker;
        for (var i = 0; i < runs.Count; i++)
        {
            args[2 + i * 3] = runs[i].RunId;
            args[3 + i * 3] = runs[i].Token;
            args[4 + i * 3] = runs[i].Step ?? "";
        }
        var r = (RedisResult[])(await CallAsync(ScriptLibrary.Renew, args).ConfigureAwait(false))!;
        return ((long)r[0], r.Skip(1).Select(x => (int)x).ToArray());
    }

    /// <summary>Records a succeeded step. The output is the recorded one: on a repeat or a race, the earlier record's.</summary>
    public async Task<(WriteOutcome Outcome, string Output)> RecordStepAsync(string runId, string token, string step, int attempt, string outputJson, TimeSpan ran)
    {
        var body = StepBody(step, "succeeded", attempt, "output", outputJson);
        var r = (RedisResult[])(await Group.CallAsync("record_step", ScriptLibrary.RecordStep, [runId, token, step, body, (long)ran.TotalMilliseconds]).ConfigureAwait(false))!;
        if ((string)r[0]! is "ok" or "exists") await WaitForReplicasAsync($"record of step '{step}' of run {runId}").ConfigureAwait(false);
        return (string)r[0]! switch
        {
            "ok" => (WriteOutcome.Ok, outputJson),
            "exists" => (WriteOutcome.AlreadyDone, ParseStep(step, (string)r[1]!).Output?.GetRawText() ?? RedflowJson.Null),
            _ => (WriteOutcome.Fenced, outputJson),
        };
    }

    /// <summary>
    /// Completes a run. With <paramref name="next"/>, the same call claims the next ready run for the freed slot
    /// from the worker's queues in order (a repeat returns the first call's next run).
    /// </summary>
    public async Task<(WriteOutcome Outcome, IReadOnlyList<ClaimedRun> Next)> CompleteAsync(string runId, string token, string outputJson, NextRunRequest? next = null)
    {
        var args = new RedisValue[next is null ? 4 : 6 + next.Queues.Count];
        (args[0], args[1], args[2], args[3]) = (runId, token, outputJson, next is null ? "" : "1");
        if (next is not null)
        {
            (args[4], args[5]) = ((long)next.Lease.TotalMilliseconds, next.Worker);
            for (var i = 0; i < next.Queues.Count; i++) args[6 + i] = next.Queues[i];
        }
        var r = (RedisResult[])(await Group.CallAsync("complete", ScriptLibrary.Complete, args).ConfigureAwait(false))!;
        var outcome = Outcome(r);
        if (outcome != WriteOutcome.Fenced) await WaitForReplicasAsync($"completion of run {runId}").ConfigureAwait(false);
        return (outcome, outcome == WriteOutcome.Fenced ? [] : ParseClaimed((RedisResult[])r[1]!));
    }

    public async Task<FailResult> FailAsync(AttemptFailure f)
    {
        var errorJson = JsonSerializer.Serialize(f.Error, RedflowJson.Options);
        var stepBody = f.FailedStep is null ? "" : StepBody(f.FailedStep, "failed", f.Attempt, "error", errorJson);
        var r = (RedisResult[])(await Group.CallAsync("fail", ScriptLibrary.Fail, [f.RunId, f.Token, errorJson, f.Retriable ? "1" : "0",
            (long)f.Delay.TotalMilliseconds, f.FailedStep ?? "", stepBody, (long)f.StepRan.TotalMilliseconds, (long)f.Lease.TotalMilliseconds]).ConfigureAwait(false))!;
        var attempt = f.Attempt;
        return (string)r[0]! switch
        {
            "retry" => new FailResult(WriteOutcome.Ok, true, (int)r[1]),
            "failed" => new FailResult(WriteOutcome.Ok, false, attempt),
            "done" => new FailResult(WriteOutcome.AlreadyDone, false, attempt),
            _ => new FailResult(WriteOutcome.Fenced, false, attempt),
        };
    }

    /// <summary>
    /// A step record's body as the worker sends it (the scripts add its place and times, <c>put_step</c> in
    /// <c>_lib.lua</c>): name, status, attempt and the result under <paramref name="resultField"/> (output or error).
    /// </summary>
    private static string StepBody(string step, string status, int attempt, string resultField, string resultJson) =>
        $"{{\"name\":{JsonSerializer.Serialize(step)},\"status\":\"{status}\",\"attempt\":{attempt},\"{resultField}\":{resultJson}}}";

    public async Task<WriteOutcome> HandBackAsync(string runId, string token, TimeSpan delay) =>
        Outcome(await CallAsync(ScriptLibrary.HandBack, runId, token, (long)delay.TotalMilliseconds).ConfigureAwait(false));

    public async Task<ReapResult> ReapAsync(int limit, int abandonAfter, TimeSpan cancelGrace)
    {
        var r = (RedisResult[])(await CallAsync(ScriptLibrary.Reap, limit, abandonAfter, (long)cancelGrace.TotalMilliseconds).ConfigureAwait(false))!;
        return new ReapResult((int)r[0], (int)r[1], (int)r[2], (int)r[3], (int)r[4]);
    }

    /// <summary>A handler reached a wait: takes and records what it waits for if it is there, records a timeout, or answers pending.</summary>
    public async Task<WaitAnswer> WaitAsync(string runId, string token, int attempt, WaitRequest wait)
    {
        var r = (RedisResult[])(await CallAsync(ScriptLibrary.Wait, runId, token, wait.Step, attempt, KindName(wait.Kind), wait.Name ?? "", wait.Key ?? "",
            wait.Relative is { } rel ? (long)rel.TotalMilliseconds : "", wait.Until is { } until ? until.ToUnixTimeMilliseconds() : "").ConfigureAwait(false))!;
        var payload = r.Length > 1 ? (string?)r[1] : null;
        switch ((string)r[0]!)
        {
            case "recorded":
                return ParseCached(payload!) is { } step ? new WaitAnswer(WaitState.Satisfied, step.Output, Recorded: step) : new WaitAnswer(WaitState.Pending);
            case "ok":
                await WaitForReplicasAsync($"record of wait '{wait.Step}' of run {runId}").ConfigureAwait(false);
                return new WaitAnswer(WaitState.Satisfied, payload ?? RedflowJson.Null);
            case "timeout": return new WaitAnswer(WaitState.TimedOut);
            case "pending": return new WaitAnswer(WaitState.Pending, DeadlineMs: string.IsNullOrEmpty(payload) ? null : long.Parse(payload, CultureInfo.InvariantCulture));
            case "failed": return new WaitAnswer(WaitState.ChildFailed, payload);
            case "canceled": return new WaitAnswer(WaitState.ChildCanceled, payload);
            case "missing": return new WaitAnswer(WaitState.ChildMissing);
            default: return new WaitAnswer(WaitState.Fenced, payload);
        }
    }

    /// <summary>Suspends a run whose every unfinished handler call waits (suspend.lua); <see cref="SuspendOutcome.Ready"/> when one of them can move on after all.</summary>
    public async Task<SuspendOutcome> SuspendAsync(string runId, string token, IReadOnlyList<PendingWait> waits)
    {
        var args = new List<RedisValue>(2 + waits.Count * 5) { runId, token };
        foreach (var w in waits)
            args.AddRange([w.Request.Step, KindName(w.Request.Kind), w.Request.Name ?? "", w.Request.Key ?? "", w.DeadlineMs is { } d ? d : ""]);
        var r = (RedisResult[])(await Group.CallAsync("suspend", ScriptLibrary.Suspend, [.. args]).ConfigureAwait(false))!;
        return (string)r[0]! switch
        {
            "waiting" => SuspendOutcome.Waiting,
            "ready" => SuspendOutcome.Ready,
            _ => SuspendOutcome.Fenced,
        };
    }

    /// <summary>Buffers a signal for a run (and requeues it if it waits on that signal); false for an unknown or finished run.</summary>
    public async Task<bool> SignalAsync(string runId, string signal, string payloadJson)
    {
        var delivered = (long)await CallAsync(ScriptLibrary.Signal, runId, signal, payloadJson).ConfigureAwait(false) == 1;
        if (delivered) await WaitForReplicasAsync($"signal '{signal}' to run {runId}", "Sending it again buffers a second signal.").ConfigureAwait(false);
        return delivered;
    }

    /// <summary>Sends an event: kept for its retention, waiting runs requeued, triggered runs started, once per idempotency key.</summary>
    public async Task<EventSent> SendEventAsync(NewEvent e)
    {
        var r = (RedisResult[])(await CallAsync(ScriptLibrary.SendEvent, e.EventId, e.Name, e.Key ?? "", e.PayloadJson, e.IdempotencyKey ?? "",
            (long)e.Retention.TotalMilliseconds, e.TraceParent).ConfigureAwait(false))!;
        await WaitForReplicasAsync($"event '{e.Name}'", "Sending it again with the same IdempotencyKey is safe.").ConfigureAwait(false);
        return new EventSent((string)r[0]!, (int)r[1], (int)r[2]);
    }

    /// <summary>A wait kind as the scripts name it.</summary>
    internal static string KindName(WaitKind kind) => kind switch
    {
        WaitKind.Child => "child",
        WaitKind.Sleep => "sleep",
        WaitKind.Signal => "signal",
        WaitKind.Event => "event",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    internal static WaitKind? ParseKind(string? name) => name switch
    {
        "child" => WaitKind.Child,
        "sleep" => WaitKind.Sleep,
        "signal" => WaitKind.Signal,
        "event" => WaitKind.Event,
        _ => null,
    };

    /// <summary>A step record a replay serves (a succeeded step or wait, or a wait's recorded timeout); null for any other record.</summary>
    internal static CachedStep? ParseCached(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        var seq = root.TryGetProperty("seq", out var s) ? s.GetInt64() : long.MaxValue;
        var kind = root.TryGetProperty("kind", out var k) ? ParseKind(k.GetString()) : null;
        if (root.TryGetProperty("timed_out", out var t) && t.ValueKind == JsonValueKind.True)
            return new CachedStep(seq, RedflowJson.Null, kind, TimedOut: true,
                Error: root.TryGetProperty("error", out var e) ? e.Deserialize<RunError>(RedflowJson.Options) : null);
        if (root.GetProperty("status").GetString() != "succeeded") return null;
        return new CachedStep(seq, root.TryGetProperty("output", out var o) ? o.GetRawText() : RedflowJson.Null, kind);
    }

    /// <summary>The Redis clock and the last instant a cron trigger handled (0 when it never ran).</summary>
    public async Task<(DateTimeOffset Now, long LastMs)> CronStateAsync(string triggerId)
    {
        // TIME from the primary of the namespace's slot, the clock the cron tick script reads (on a cluster, any other
        // node's clock could differ).
        var time = SlotOwner.ExecuteAsync("TIME");
        var last = Db.StringGetAsync(Keys.CronLast(triggerId));
        var t = (RedisResult[])(await time.ConfigureAwait(false))!;
        var now = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse((string)t[0]!, CultureInfo.InvariantCulture) * 1000 + long.Parse((string)t[1]!, CultureInfo.InvariantCulture) / 1000);
        var l = await last.ConfigureAwait(false);
        return (now, l.IsNull ? 0 : (long)l);
    }

    /// <summary>Marks a trigger as handled up to an instant without firing (its first start, or skipped misfires).</summary>
    public Task CronAdvanceAsync(string triggerId, long instantMs) => CronTickAsync("", triggerId, "", "", 0, TimeSpan.Zero, [(instantMs, "")]);

    /// <summary>Fires due instants of a trigger, once each; returns how many fired and how many were skipped at the cap.</summary>
    public async Task<(int Fired, int Skipped)> CronTickAsync(string workflow, string triggerId, string inputJson, string queue, int maxAttempts,
        TimeSpan idempotencyWindow, IReadOnlyList<(long InstantMs, string RunId)> instants)
    {
        var args = new List<RedisValue> { workflow, triggerId, inputJson, queue, maxAttempts, (long)idempotencyWindow.TotalMilliseconds };
        foreach (var (instant, runId) in instants) args.AddRange([instant, runId]);
        var r = (RedisResult[])(await CallAsync(ScriptLibrary.CronTick, [.. args]).ConfigureAwait(false))!;
        return ((int)r[0], (int)r[1]);
    }

    /// <summary>Takes due OnFailure calls of <paramref name="workflows"/> for one lease.</summary>
    public async Task<IReadOnlyList<PendingOnFailure>> ClaimOnFailureAsync(TimeSpan lease, int max, IEnumerable<string> workflows)
    {
        var args = new List<RedisValue> { (long)lease.TotalMilliseconds, max };
        args.AddRange(workflows.Select(w => (RedisValue)w));
        var r = (RedisResult[])(await CallAsync(ScriptLibrary.ClaimOnFailure, [.. args]).ConfigureAwait(false))!;
        return r.Select(x => (RedisResult[])x!).Select(f => new PendingOnFailure(
            new RunInfo((string)f[0]!, (string)f[1]!, (string)f[2]!, Int(f[5]), Int(f[6])),
            (string?)f[3] ?? RedflowJson.Null, ParseError((string)f[4]!))).ToList();
    }

    /// <summary>An OnFailure call was made: it is no longer pending.</summary>
    public Task OnFailureDoneAsync(string runId) => Db.SortedSetRemoveAsync(Keys.OnFailure, runId);

    public async Task<long> RegisterAsync(string app, string node, string workerJson, IReadOnlyList<WorkflowRegistration> workflows)
    {
        var args = new List<RedisValue> { app, node, workerJson };
        foreach (var w in workflows)
            args.AddRange([w.Name, w.Queue, w.MaxConcurrency, w.MaxAttempts, (long)w.Retention.TotalMilliseconds, w.HasOnFailure ? "1" : "0", w.CronJson, w.EventTriggers,
                w.MaxConcurrencyPerKey is { } kc ? kc : "", w.RateLimit is { } rl ? rl.Limit : "", w.RateLimit is { } rp ? (long)rp.Period.TotalMilliseconds : "",
                w.Debounce is { } d ? (long)d.Period.TotalMilliseconds : "", w.Debounce?.MaxWait is { } mw ? (long)mw.TotalMilliseconds : ""]);
        return (long)await CallAsync(ScriptLibrary.Register, [.. args]).ConfigureAwait(false);
    }

    // ---- reads -----------------------------------------------------------------------------------

    public async Task<RunRecord?> GetRunAsync(string runId)
    {
        var entries = await Db.HashGetAllAsync(Keys.Run(runId)).ConfigureAwait(false);
        if (entries.Length == 0) return null;
        var run = ToRunRecord(entries);
        return run.Status == RunStatus.Waiting ? run with { Waits = await GetWaitsAsync(runId).ConfigureAwait(false) } : run;
    }

    /// <summary>What a waiting run waits on (the waits hash of suspend.lua, without its index fields), by step name.</summary>
    public async Task<IReadOnlyList<WaitInfo>> GetWaitsAsync(string runId)
    {
        var entries = await Db.HashGetAllAsync(Keys.RunWaits(runId)).ConfigureAwait(false);
        var waits = new List<WaitInfo>();
        foreach (var e in entries)
        {
            var step = (string)e.Name!;
            if (step.StartsWith('\n')) continue;
            using var doc = JsonDocument.Parse((string)e.Value!);
            var w = doc.RootElement;
            string? S(string p) => w.TryGetProperty(p, out var v) && v.GetString() is { Length: > 0 } x ? x : null;
            waits.Add(new WaitInfo(step, ParseKind(S("kind")) ?? WaitKind.Child, S("name"), S("key"),
                w.TryGetProperty("until", out var u) && u.ValueKind == JsonValueKind.Number ? DateTimeOffset.FromUnixTimeMilliseconds(u.GetInt64()) : null));
        }
        return waits.OrderBy(w => w.Step, StringComparer.Ordinal).ToList();
    }

    /// <summary>The errors of a run's failed attempts that were retried, oldest first (fail.lua).</summary>
    public async Task<IReadOnlyList<(int Attempt, DateTimeOffset FailedAt, RunError Error, string? Worker, DateTimeOffset? StartedAt)>> GetAttemptErrorsAsync(string runId)
    {
        var items = await Db.ListRangeAsync(Keys.Attempts(runId)).ConfigureAwait(false);
        return items.Select(i =>
        {
            using var doc = JsonDocument.Parse((string)i!);
            var root = doc.RootElement;
            return (root.GetProperty("attempt").GetInt32(), DateTimeOffset.FromUnixTimeMilliseconds(root.GetProperty("failed_at").GetInt64()),
                root.GetProperty("error").Deserialize<RunError>(RedflowJson.Options)!,
                root.TryGetProperty("worker", out var w) && w.GetString() is { Length: > 0 } node ? node : null,
                root.TryGetProperty("started_at", out var started) && started.ValueKind == JsonValueKind.Number ? DateTimeOffset.FromUnixTimeMilliseconds(started.GetInt64()) : (DateTimeOffset?)null);
        }).ToList();
    }

    public async Task<IReadOnlyList<StepRecord>> GetStepsAsync(string runId)
    {
        var entries = await Db.HashGetAllAsync(Keys.Steps(runId)).ConfigureAwait(false);
        return entries
            .Select(e => (Seq: StepSeq(e.Value!), Record: ParseStep(e.Name!, e.Value!)))
            .OrderBy(x => x.Seq)
            .Select(x => x.Record)
            .ToList();
    }

    public async Task<RunState?> GetStateAsync(string runId)
    {
        var v = await Db.HashGetAsync(Keys.Run(runId), ["status", "output", "error"]).ConfigureAwait(false);
        if (v[0].IsNull) return null;
        return new RunState(Keys.ParseStatus(v[0]), v[1].IsNull ? null : RedflowJson.Parse(v[1]), v[2].IsNull ? null : ParseError(v[2]!));
    }

    internal static RunRecord ToRunRecord(HashEntry[] entries)
    {
        var h = entries.ToDictionary(e => (string)e.Name!, e => e.Value);
        string? S(string name) => h.TryGetValue(name, out var v) && !v.IsNullOrEmpty ? (string?)v : null;
        int I(string name) => h.TryGetValue(name, out var v) && !v.IsNullOrEmpty ? (int)v : 0;
        DateTimeOffset? T(string name) => h.TryGetValue(name, out var v) && !v.IsNullOrEmpty ? DateTimeOffset.FromUnixTimeMilliseconds((long)v) : null;
        return new RunRecord
        {
            Id = S("id")!,
            Workflow = S("workflow")!,
            Queue = S("queue")!,
            Status = Keys.ParseStatus(S("status")),
            Input = RedflowJson.Parse(S("input")),
            Output = S("output") is { } output ? RedflowJson.Parse(output) : null,
            Error = S("error") is { } error ? ParseError(error) : null,
            Attempt = I("attempt"),
            MaxAttempts = I("max_attempts"),
            CreatedAt = T("created_at") ?? default,
            AvailableAt = T("available_at"),
            StartedAt = T("started_at"),
            FinishedAt = T("finished_at"),
            ParentRunId = S("parent_run_id"),
            IdempotencyKey = S("idempotency_key"),
            CancelReason = S("cancel_reason"),
            Resumes = I("resumes"),
            RerunOf = S("rerun_of"),
            Key = S("fkey"),
            Priority = I("priority"),
        };
    }

    /// <summary>Reads a stored error; a missing or malformed one reads as an "Unknown" error instead of throwing.</summary>
    internal static RunError ParseError(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<RunError>(json, RedflowJson.Options) ?? new RunError("Unknown", "No error was recorded.");
        }
        catch (JsonException)
        {
            return new RunError("Unknown", json is "" or "{}" ? "No error was recorded." : json);
        }
    }

    internal static StepRecord ParseStep(string name, string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        DateTimeOffset? T(string p) => root.TryGetProperty(p, out var v) && v.ValueKind == JsonValueKind.Number ? DateTimeOffset.FromUnixTimeMilliseconds(v.GetInt64()) : null;
        return new StepRecord
        {
            Name = name,
            Status = Keys.ParseStatus(root.GetProperty("status").GetString()),
            Output = root.TryGetProperty("output", out var o) ? o.Clone() : null,
            Error = root.TryGetProperty("error", out var e) ? e.Deserialize<RunError>(RedflowJson.Options) : null,
            StartedAt = T("started_at"),
            FinishedAt = T("finished_at"),
            Attempt = root.TryGetProperty("attempt", out var a) ? a.GetInt32() : 0,
        };
    }

    private static long StepSeq(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("seq", out var s) ? s.GetInt64() : long.MaxValue;
    }

    private static int Int(RedisResult r) => r.IsNull ? 0 : int.Parse((string)r!, CultureInfo.InvariantCulture);

    private static WriteOutcome Outcome(RedisResult result) => Outcome((RedisResult[])result!);

    private static WriteOutcome Outcome(RedisResult[] r)
    {
        return (string)r[0]! switch
        {
            "ok" => WriteOutcome.Ok,
            "done" => WriteOutcome.AlreadyDone,
            _ => WriteOutcome.Fenced,
        };
    }
}
