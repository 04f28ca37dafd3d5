using Redflow.TestProcesses;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using StackExchange.Redis;

namespace Redflow.FaultTests;

/// <summary>How hard and how long the harness pushes.</summary>
internal sealed record FaultProfile(
    string Name, int Seed, int Workers, int Concurrency, TimeSpan FaultPhase, double EmitsPerSecond,
    TimeSpan MinFaultGap, TimeSpan MaxFaultGap, TimeSpan QuietTimeout)
{
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(2);
    public TimeSpan ReaperInterval { get; init; } = TimeSpan.FromMilliseconds(500); // as in Redflow.FaultWorker

    /// <summary>About two minutes: CI runs it on every build.</summary>
    public static FaultProfile Short => new("short", 7, 3, 6, TimeSpan.FromSeconds(80), 6, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(90));

    /// <summary>30 minutes (override with REDFLOW_FAULT_MINUTES), more workers.</summary>
    public static FaultProfile Long(TimeSpan phase) =>
        new("long", 1234, 5, 8, phase, 10, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(6), TimeSpan.FromSeconds(120));
}

/// <summary>The figures of one harness run.</summary>
internal sealed class FaultReport
{
    public Dictionary<string, int> Faults { get; } = [];
    public Dictionary<string, int> Counts { get; } = [];
    public List<string> Violations { get; } = [];
    public List<string> Notes { get; } = [];

    public void Fault(string kind) { lock (Faults) Faults[kind] = Faults.GetValueOrDefault(kind) + 1; }
    public void Count(string what, int by = 1) { lock (Counts) Counts[what] = Counts.GetValueOrDefault(what) + by; }
    public void Violation(string what) { lock (Violations) Violations.Add(what); }

    public string Render(string title)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"== {title} ==");
        sb.AppendLine("counts:");
        foreach (var (k, v) in Counts.OrderBy(x => x.Key, StringComparer.Ordinal)) sb.AppendLine($"  {k,-40} {v}");
        sb.AppendLine($"faults injected: {Faults.Values.Sum()}");
        foreach (var (k, v) in Faults.OrderBy(x => x.Key, StringComparer.Ordinal)) sb.AppendLine($"  {k,-40} {v}");
        foreach (var n in Notes) sb.AppendLine("note: " + n);
        sb.AppendLine($"invariant violations: {Violations.Count}");
        foreach (var v in Violations.Take(50)) sb.AppendLine("  VIOLATION " + v);
        return sb.ToString();
    }
}

/// <summary>
/// The fault harness: owns a Redis server and several Redflow.FaultWorker processes, drives a mixed workload,
/// injects faults at random, then (after a quiet period) checks the guarantees against Redis's records and the
/// workers' independent ledgers.
/// </summary>
internal sealed class FaultHarness : IAsyncDisposable
{
    private const int MaxAttempts = 4; // as registered by Redflow.FaultWorker
    private const int CappedLimit = 2;

    private readonly FaultProfile _profile;
    private readonly Action<string> _log;
    private readonly string _root;
    private readonly string _prefix = "faults";
    private readonly FaultReport _report = new();
    private readonly List<WorkerProcess> _workers = [];
    private readonly List<WorkerProcess> _retired = [];
    private readonly HashSet<int> _deadPids = []; // workers this harness SIGKILLed or SIGSTOPped past the lease (under _gate)
    private readonly object _gate = new();
    private readonly ConcurrentBag<Emitted> _emitted = [];
    private readonly ConcurrentDictionary<string, ConcurrentBag<string>> _idempotent = new();
    private readonly List<Task> _background = [];
    private readonly Random _faultRng;
    private readonly Random _workRng;
    private RedisProcess _redis = null!;
    private IRedflowClient[] _clients = [];
    private ConnectionMultiplexer _raw = null!;
    private int _workerSeq;
    private int _maxCappedRunning;

    private sealed record Emitted(string RunId, string Kind, string? IdemKey);

    /// <summary>A wait of a sleeper's or waiter's plan: its step name, kind ("sleep", "until", "signal"), and a sleep's ms or time.</summary>
    private sealed record PlannedWait(string Step, string Kind, int Ms, long At);

    /// <summary>How one signal send ended: acknowledged (true), refused (false: run unknown or finished), or failed during a fault.</summary>
    private enum SendState { Pending, Acked, Refused, Confirmed, Lost }

    /// <summary>
    /// One signal sent to a waiter run, in send order (<see cref="Index"/>). A send that failed during a fault is ambiguous:
    /// once Redis answers again the sender looks for its payload id in the run's buffer and step records, and counts it
    /// <see cref="SendState.Confirmed"/> (there: as good as acknowledged) or <see cref="SendState.Lost"/> (sent again, with a new id).
    /// </summary>
    private sealed class SignalSend(int k, string id, int index, string statusAtSend)
    {
        public int K { get; } = k;
        public string Id { get; } = id;
        public int Index { get; } = index;
        public string StatusAtSend { get; } = statusAtSend;
        public SendState State { get; set; } = SendState.Pending;
    }

    private readonly ConcurrentDictionary<string, List<PlannedWait>> _waitPlans = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, List<SignalSend>> _signals = new(StringComparer.Ordinal);

    public FaultHarness(FaultProfile profile, Action<string> log)
    {
        _profile = profile;
        _log = log;
        _faultRng = new Random(profile.Seed);
        _workRng = new Random(profile.Seed * 31 + 1);
        _root = Path.Combine(Path.GetTempPath(), "redflow-faults", $"{profile.Name}-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}");
        Directory.CreateDirectory(Path.Combine(_root, "ledger"));
    }

    public string Root => _root;

    private string LedgerDir => Path.Combine(_root, "ledger");

    public async Task<FaultReport> RunAsync()
    {
        var clock = Stopwatch.StartNew();
        _redis = await RedisProcess.StartAsync(Path.Combine(_root, "redis"));
        _log($"redis-server on port {_redis.Port}, dir {_redis.Dir}; ledger {LedgerDir}");
        _raw = await ConnectionMultiplexer.ConnectAsync(_redis.Config + ",abortConnect=false,allowAdmin=true,syncTimeout=3000,asyncTimeout=3000");
        for (var i = 0; i < _profile.Workers; i++) _workers.Add(await StartWorkerAsync());
        _clients = Enumerable.Range(0, 3).Select(i => RedflowClient.Create(new RedflowClientOptions { Url = _redis.Config, Prefix = _prefix })).ToArray();

        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(() => SampleCapAsync(stop.Token));
        var workload = Task.Run(() => WorkloadAsync(_profile.FaultPhase));
        var faults = Task.Run(() => FaultsAsync(_profile.FaultPhase));
        await Task.WhenAll(workload, faults);
        Task[] pending;
        lock (_background) pending = [.. _background];
        await Task.WhenAll(pending);
        _log($"fault phase over after {clock.Elapsed:mm\\:ss}; hiccup phase");

        // Every worker slot has a live, running worker; Redis is up. Then Redis pauses twice while never-failing
        // runs are in flight, and the quiet period.
        await HealAsync();
        await HiccupsAsync();
        _log($"hiccup phase over after {clock.Elapsed:mm\\:ss}; quiet period");
        await QuietAsync();
        stop.Cancel();
        await sampler;
        await CheckAsync();
        _report.Count("harness seconds", (int)clock.Elapsed.TotalSeconds);
        return _report;
    }

    // ---- workers -----------------------------------------------------------------------------------

    private Task<WorkerProcess> StartWorkerAsync()
    {
        var n = Interlocked.Increment(ref _workerSeq);
        return WorkerProcess.StartAsync(_redis.Config, _prefix, Path.Combine(LedgerDir, $"worker-{n:000}.ledger"), _profile.Lease, _profile.Concurrency);
    }

    private async Task HealAsync()
    {
        if ((await _redis.CliAsync("PING")).Trim() != "PONG") await _redis.StartAgainAsync();
        List<WorkerProcess> workers;
        lock (_gate) workers = [.. _workers];
        foreach (var w in workers.Where(w => w.Paused)) await w.ResumeAsync();
        for (var i = 0; i < workers.Count; i++)
        {
            if (!workers[i].Killed) continue;
            var fresh = await StartWorkerAsync();
            lock (_gate) _workers[_workers.IndexOf(workers[i])] = fresh;
        }
    }

    // ---- workload ----------------------------------------------------------------------------------

    private object Plan(Random rng, int minSteps, int maxSteps, bool withFailures, int poison = -1, object[]? children = null)
    {
        var n = rng.Next(minSteps, maxSteps + 1);
        var steps = new object[n];
        for (var i = 0; i < n; i++)
        {
            var roll = rng.NextDouble();
            var ms = roll < 0.7 ? rng.Next(0, 100) : roll < 0.95 ? rng.Next(100, 600) : rng.Next(1000, 3000);
            var f = rng.NextDouble();
            var fail = !withFailures ? 0 : f < 0.90 ? 0 : f < 0.96 ? 1 : f < 0.99 ? 2 : MaxAttempts; // MaxAttempts: fails for good
            steps[i] = new { ms, fail };
        }
        return new { steps, poison = poison >= n ? n - 1 : poison, children };
    }

    /// <summary>
    /// A plan of 1-4 steps (now and then a transient failure, retried) with waits placed among them: 1-2 sleeps
    /// (SleepAsync 0.3-5 s or SleepUntilAsync 0.5-6 s from now) for a sleeper; 1-4 signal waits (and now and then a sleep)
    /// for a waiter. <paramref name="waits"/> gets the waits with their step names.
    /// </summary>
    private static object WaitPlan(Random rng, bool signals, List<PlannedWait> waits)
    {
        var items = new List<object>();
        for (var i = rng.Next(1, 5); i > 0; i--)
            items.Add(new { ms = rng.NextDouble() < 0.8 ? rng.Next(0, 80) : rng.Next(100, 600), fail = rng.NextDouble() < 0.1 ? 1 : 0 });
        var nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(); // the host's clock, which is Redis's (same machine)
        var kinds = new List<string>();
        if (signals)
        {
            for (var i = rng.Next(1, 5); i > 0; i--) kinds.Add("signal");
            if (rng.NextDouble() < 0.3) kinds.Add(rng.NextDouble() < 0.5 ? "sleep" : "until");
        }
        else
        {
            for (var i = rng.Next(1, 3); i > 0; i--) kinds.Add(rng.NextDouble() < 0.5 ? "sleep" : "until");
        }
        var slots = kinds.Select(_ => rng.Next(0, items.Count + 1)).Order().ToList();
        var plan = new List<object>();
        var w = 0;
        for (var i = 0; i <= items.Count; i++)
        {
            while (w < kinds.Count && slots[w] == i)
            {
                var kind = kinds[w++];
                var ms = rng.Next(300, 5000);
                var at = nowMs + rng.Next(500, 6000);
                waits.Add(new PlannedWait($"s{plan.Count:00}", kind, ms, at));
                plan.Add(kind switch
                {
                    "sleep" => new { wait = kind, ms },
                    "until" => (object)new { wait = kind, at },
                    _ => new { wait = kind },
                });
            }
            if (i < items.Count) plan.Add(items[i]);
        }
        return new { steps = plan, poison = -1 };
    }

    /// <summary>
    /// Sends a waiter run's signals ("go", payload {k, id}), one at a time, 0-2.5 s apart (so some arrive before the run
    /// reaches its wait and are buffered, others while it waits), while faults happen. A send that fails is resolved
    /// once Redis answers (see <see cref="SignalSend"/>); a lost one is sent again with a new id.
    /// </summary>
    private async Task SendSignalsAsync(IRedflowClient client, string runId, int count, Random rng)
    {
        var sends = _signals.GetOrAdd(runId, _ => []);
        for (var k = 0; k < count; k++)
        {
            await Task.Delay(rng.Next(0, 2500));
            for (var attempt = 0; ; attempt++)
            {
                string status;
                try { status = (string?)await _raw.GetDatabase().HashGetAsync($"{{{_prefix}}}:run:{runId}", "status") ?? "?"; }
                catch (Exception) { status = "?"; }
                SignalSend send;
                lock (sends)
                {
                    send = new SignalSend(k, $"sig-{k}-{attempt}", sends.Count, status);
                    sends.Add(send);
                }
                try
                {
                    if (await client.SignalRunAsync(runId, "go", new { k, id = send.Id }))
                    {
                        send.State = SendState.Acked;
                        _report.Count("signals acknowledged");
                        break;
                    }
                    send.State = SendState.Refused; // the run finished (it cannot have, with signals still to take)
                    _report.Count("signals refused (run finished)");
                    return;
                }
                catch (Exception)
                {
                    var there = await SignalLandedAsync(runId, send.Id);
                    send.State = there ? SendState.Confirmed : SendState.Lost;
                    _report.Count(there ? "signals failed during a fault, found in Redis" : "signals failed during a fault, not in Redis (sent again)");
                    if (there) break;
                }
            }
        }
    }

    /// <summary>Whether a signal whose send failed is in Redis (buffered or taken): asked once Redis answers, 2 s later (a send held back by a pause has run by then).</summary>
    private async Task<bool> SignalLandedAsync(string runId, string id)
    {
        var db = _raw.GetDatabase();
        var until = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            try
            {
                await db.PingAsync();
                await Task.Delay(2000);
                var needle = $"\"id\":\"{id}\"";
                foreach (var v in await db.ListRangeAsync($"{{{_prefix}}}:signals:{runId}"))
                    if (((string?)v ?? "").Contains(needle, StringComparison.Ordinal)) return true;
                foreach (var v in await db.HashValuesAsync($"{{{_prefix}}}:steps:{runId}"))
                    if (((string?)v ?? "").Contains(needle, StringComparison.Ordinal)) return true;
                return false;
            }
            catch (Exception) when (DateTime.UtcNow < until)
            {
                await Task.Delay(200);
            }
        }
    }

    private async Task WorkloadAsync(TimeSpan phase)
    {
        var until = DateTime.UtcNow + phase;
        var gap = TimeSpan.FromSeconds(1 / _profile.EmitsPerSecond);
        var inFlight = new SemaphoreSlim(64);
        var tasks = new List<Task>();
        var seq = 0;
        while (DateTime.UtcNow < until)
        {
            await Task.Delay(gap);
            if (!await inFlight.WaitAsync(0)) { _report.Count("emits skipped (64 in flight)"); continue; }
            var rng = new Random(_workRng.Next());
            var n = ++seq;
            tasks.Add(Task.Run(async () =>
            {
                try { await EmitOneAsync(rng, n); }
                finally { inFlight.Release(); }
            }));
        }
        await Task.WhenAll(tasks);
    }

    private async Task EmitOneAsync(Random rng, int n)
    {
        var roll = rng.NextDouble();
        var client = _clients[rng.Next(_clients.Length)];
        string kind, workflow;
        object input;
        List<PlannedWait>? waits = null;
        if (roll < 0.40) { kind = "main"; workflow = "fault-main"; input = Plan(rng, 1, 20, true); }
        else if (roll < 0.47) { kind = "sleeper"; workflow = "fault-wait"; input = WaitPlan(rng, false, waits = []); }
        else if (roll < 0.55) { kind = "waiter"; workflow = "fault-wait"; input = WaitPlan(rng, true, waits = []); }
        else if (roll < 0.67)
        {
            kind = "parent"; workflow = "fault-parent";
            var children = Enumerable.Range(0, rng.Next(1, 3)).Select(_ => Plan(rng, 1, 5, false)).ToArray();
            input = Plan(rng, 1, 8, false, children: children);
        }
        else if (roll < 0.77) { kind = "capped"; workflow = "fault-capped"; input = Plan(rng, 1, 4, false); }
        else if (roll < 0.82) { kind = "poison"; workflow = "fault-main"; input = Plan(rng, 1, 6, false, poison: rng.Next(0, 6)); }
        else if (roll < 0.85) { kind = "invalid"; workflow = "fault-typed"; input = new { count = "not a number" }; }
        else if (roll < 0.93)
        {
            // Idempotent emits racing from every client at once.
            var key = $"idem-{n}";
            input = Plan(rng, 1, 6, false);
            var racers = _clients.Select(c => Task.Run(async () =>
            {
                try
                {
                    var h = await c.EmitWorkflowAsync("fault-main", input, new EmitOptions { IdempotencyKey = key });
                    _idempotent.GetOrAdd(key, _ => []).Add(h.RunId);
                    _emitted.Add(new Emitted(h.RunId, "idempotent", key));
                    _report.Count("emits acknowledged");
                }
                catch (Exception) { _report.Count("emits failed (fault)"); }
            })).ToArray();
            await Task.WhenAll(racers);
            return;
        }
        else { kind = "main-canceled"; workflow = "fault-main"; input = Plan(rng, 2, 20, false); }

        RunHandle handle;
        try
        {
            handle = await client.EmitWorkflowAsync(workflow, input);
        }
        catch (Exception)
        {
            _report.Count("emits failed (fault)"); // not acknowledged: nothing to check (the run may or may not exist)
            return;
        }
        if (waits is not null) _waitPlans[handle.RunId] = waits;
        _emitted.Add(new Emitted(handle.RunId, kind, null));
        _report.Count("emits acknowledged");
        if (kind == "waiter") await SendSignalsAsync(client, handle.RunId, waits!.Count(w => w.Kind == "signal"), rng);
        if (kind == "main-canceled")
        {
            await Task.Delay(rng.Next(0, 3000));
            try
            {
                if (await client.CancelRunAsync(handle.RunId, "harness cancel")) _report.Count("cancels recorded");
                else _report.Count("cancels of finished runs");
            }
            catch (Exception) { _report.Count("cancels failed (fault)"); }
        }
    }

    /// <summary>Emit kinds whose runs never fail: one of them that ends Failed (abandoned or otherwise) is a violation.</summary>
    private static readonly HashSet<string> NeverFails = ["parent", "capped", "idempotent", "main-canceled", "steady", "sleeper", "waiter"];

    /// <summary>
    /// Redis pauses as production meets them, and nothing else: two <c>CLIENT PAUSE</c>s past the lease a few seconds
    /// apart, while runs of a workflow that never fails are in flight (claims are sent during the pauses and answered
    /// after them). None of them may fail (such pauses once failed healthy runs as abandoned).
    /// </summary>
    private async Task HiccupsAsync()
    {
        var rng = new Random(_profile.Seed * 7 + 3);
        for (var i = 0; i < 60; i++)
        {
            var handle = await _clients[i % _clients.Length].EmitWorkflowAsync("fault-main", Plan(rng, 3, 8, false));
            _emitted.Add(new Emitted(handle.RunId, "steady", null));
            _report.Count("emits acknowledged");
        }
        for (var pause = 0; pause < 2; pause++)
        {
            await Task.Delay(TimeSpan.FromSeconds(1 + 2 * rng.NextDouble())); // runs under way, then a few seconds apart
            var ms = (int)(_profile.Lease.TotalMilliseconds * (1.3 + 0.5 * rng.NextDouble()));
            _log($"hiccup: CLIENT PAUSE {ms}");
            await _redis.CliAsync("CLIENT", "PAUSE", ms.ToString(CultureInfo.InvariantCulture));
            _report.Fault("client-pause-twice (hiccup phase)");
            await Task.Delay(ms);
        }
    }

    // ---- faults ------------------------------------------------------------------------------------

    private async Task FaultsAsync(TimeSpan phase)
    {
        var until = DateTime.UtcNow + phase;
        var lease = _profile.Lease;
        await Task.Delay(TimeSpan.FromSeconds(3));
        while (DateTime.UtcNow < until)
        {
            var roll = _faultRng.Next(100);
            try
            {
                if (roll < 22) await KillWorkerAsync();
                else if (roll < 40) PauseWorker(_faultRng.NextDouble() < 0.7 ? lease * (1.5 + _faultRng.NextDouble()) : lease * 0.3);
                else if (roll < 48) await RestartRedisAsync(kill9: false);
                else if (roll < 54) await RestartRedisAsync(kill9: true);
                else if (roll < 66)
                {
                    var type = _faultRng.NextDouble() < 0.7 ? "normal" : "pubsub";
                    _log($"fault: CLIENT KILL TYPE {type}");
                    await _redis.CliAsync("CLIENT", "KILL", "TYPE", type);
                    _report.Fault($"client-kill-{type}");
                }
                else if (roll < 78)
                {
                    var longer = _faultRng.NextDouble() < 0.5;
                    var ms = (int)(longer ? lease.TotalMilliseconds * (1.3 + _faultRng.NextDouble()) : lease.TotalMilliseconds * 0.3);
                    _log($"fault: CLIENT PAUSE {ms}");
                    await _redis.CliAsync("CLIENT", "PAUSE", ms.ToString(CultureInfo.InvariantCulture));
                    _report.Fault(longer ? "client-pause-past-lease" : "client-pause-short");
                    await Task.Delay(ms);
                }
                else if (roll < 88)
                {
                    var longer = _faultRng.NextDouble() < 0.5;
                    var s = longer ? lease.TotalSeconds * (1.3 + _faultRng.NextDouble()) : lease.TotalSeconds * 0.3;
                    _log($"fault: DEBUG SLEEP {s:0.00}");
                    await _redis.CliAsync("DEBUG", "SLEEP", s.ToString("0.00", CultureInfo.InvariantCulture));
                    _report.Fault(longer ? "debug-sleep-past-lease" : "debug-sleep-short");
                }
                else
                {
                    // Two faults at once: a worker paused past its lease while another is killed.
                    PauseWorker(lease * 2);
                    await KillWorkerAsync();
                }
            }
            catch (Exception ex)
            {
                _report.Notes.Add($"fault injection failed: {ex.GetType().Name}: {ex.Message}");
            }
            var gap = _profile.MinFaultGap + (_profile.MaxFaultGap - _profile.MinFaultGap) * _faultRng.NextDouble();
            await Task.Delay(gap);
        }
    }

    private WorkerProcess? PickWorker(bool allowPaused)
    {
        lock (_gate)
        {
            var live = _workers.Where(w => !w.Killed && (allowPaused || !w.Paused)).ToList();
            return live.Count == 0 ? null : live[_faultRng.Next(live.Count)];
        }
    }

    private async Task KillWorkerAsync()
    {
        var victim = PickWorker(allowPaused: true);
        if (victim is null) return;
        _log($"fault: SIGKILL worker {victim.Pid}");
        victim.Kill();
        _report.Fault("worker-sigkill");
        lock (_gate)
        {
            _retired.Add(victim);
            _deadPids.Add(victim.Pid);
        }
        // A replacement starts in the background (about as long as a real restart takes).
        Track(Task.Run(async () =>
        {
            var fresh = await StartWorkerAsync();
            lock (_gate) _workers[_workers.IndexOf(victim)] = fresh;
        }));
    }

    private void PauseWorker(TimeSpan pause)
    {
        var victim = PickWorker(allowPaused: false);
        if (victim is null) return;
        var past = pause > _profile.Lease;
        _log($"fault: SIGSTOP worker {victim.Pid} for {pause.TotalMilliseconds:0} ms");
        _report.Fault(past ? "worker-sigstop-past-lease" : "worker-sigstop-short");
        if (past) lock (_gate) _deadPids.Add(victim.Pid); // not seen past its lease: a death, as far as the reaper can tell
        Track(Task.Run(async () =>
        {
            await victim.PauseAsync();
            await Task.Delay(pause);
            await victim.ResumeAsync();
        }));
    }

    private async Task RestartRedisAsync(bool kill9)
    {
        _log(kill9 ? "fault: redis SIGKILL + start" : "fault: redis SHUTDOWN + start");
        if (kill9) await _redis.KillAsync();
        else await _redis.ShutdownAsync();
        _report.Fault(kill9 ? "redis-sigkill-restart" : "redis-shutdown-restart");
        await Task.Delay(TimeSpan.FromMilliseconds(300 + _faultRng.Next(1500)));
        await _redis.StartAgainAsync();
    }

    private void Track(Task t)
    {
        lock (_background) _background.Add(t);
    }

    // ---- sampling ----------------------------------------------------------------------------------

    private async Task SampleCapAsync(CancellationToken ct)
    {
        var key = $"{{{_prefix}}}:running:fault-capped";
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var n = (int)await _raw.GetDatabase().SetLengthAsync(key);
                _report.Count("cap samples");
                if (n > _maxCappedRunning) _maxCappedRunning = n;
                if (n > CappedLimit) _report.Violation($"G5: {n} runs of fault-capped running at once (cap {CappedLimit})");
            }
            catch (Exception) { /* Redis down or paused: no sample */ }
            try { await Task.Delay(50, ct); } catch (OperationCanceledException) { }
        }
    }

    // ---- quiet period and checks -------------------------------------------------------------------

    private async Task QuietAsync()
    {
        var until = DateTime.UtcNow + _profile.QuietTimeout;
        var db = _raw.GetDatabase();
        while (true)
        {
            var open = 0;
            try
            {
                foreach (var wf in await db.SetMembersAsync($"{{{_prefix}}}:workflows"))
                {
                    foreach (var s in new[] { "scheduled", "queued", "waiting" })
                        open += (int)await db.SortedSetLengthAsync($"{{{_prefix}}}:wfstatus:{s}:{wf}");
                    open += (int)await db.SetLengthAsync($"{{{_prefix}}}:running:{wf}"); // running runs: the running set
                }
            }
            catch (Exception) { open = -1; }
            if (open == 0) return;
            if (DateTime.UtcNow > until)
            {
                _report.Notes.Add($"quiet period ended with {open} runs not finished");
                return;
            }
            await Task.Delay(1000);
        }
    }

    private async Task CheckAsync()
    {
        var db = _raw.GetDatabase();
        var client = _clients[0];
        var ledger = Ledger.Read(LedgerDir);
        _report.Count("ledger lines", ledger.Lines.Count);
        _report.Count("handler invocations", ledger.Invocations.Count);
        _report.Count("handler invocations with unknown token", ledger.Invocations.Values.Count(i => i.Token is null));
        if (ledger.Malformed > 0) _report.Notes.Add($"{ledger.Malformed} malformed ledger lines");
        _report.Count("max fault-capped running (sampled)", _maxCappedRunning);

        // Every run, from each workflow's index of all its runs.
        var ids = new List<string>();
        foreach (var wf in await db.SetMembersAsync($"{{{_prefix}}}:workflows"))
            ids.AddRange((await db.SortedSetRangeByRankAsync($"{{{_prefix}}}:wfruns:{wf}")).Select(v => (string)v!));
        var runs = new Dictionary<string, RunRecord>(StringComparer.Ordinal);
        var steps = new Dictionary<string, IReadOnlyList<StepRecord>>(StringComparer.Ordinal);
        foreach (var id in ids)
        {
            if (await client.GetRunAsync(id) is { } r) runs[id] = r;
            steps[id] = await client.GetRunStepsAsync(id);
        }
        var nowMs = await RedisNowMsAsync();
        _report.Count("runs in redis", runs.Count);
        foreach (var g in runs.Values.GroupBy(r => r.Status)) _report.Count($"runs {g.Key}", g.Count());
        _report.Count("runs abandoned (G4 rule)", runs.Values.Count(r => r.Error?.Type == "Redflow.AbandonedRun"));
        _report.Count("runs retried (attempt > 1)", runs.Values.Count(r => r.Attempt > 1));
        _report.Count("runs resumed (resumes > 0)", runs.Values.Count(r => r.Resumes > 0));

        // G1 + liveness: every acknowledged emit is in Redis and reached a terminal state.
        var emitted = _emitted.ToList();
        foreach (var e in emitted)
        {
            if (!runs.TryGetValue(e.RunId, out var r)) { _report.Violation($"G1: acknowledged emit {e.RunId} ({e.Kind}) is not in Redis"); continue; }
            if (!IsTerminal(r.Status)) _report.Violation($"G4: acknowledged run {e.RunId} ({e.Kind}) ended the quiet period {r.Status}");
        }
        foreach (var r in runs.Values.Where(r => !IsTerminal(r.Status) && !emitted.Any(e => e.RunId == r.Id)))
            _report.Violation($"G4: run {r.Id} ({r.Workflow}, not acknowledged) ended the quiet period {r.Status}");

        // Leases: nothing left Running with a lease expired longer ago than lease + reaper interval (+1 s margin).
        var bound = (long)(_profile.Lease + _profile.ReaperInterval + TimeSpan.FromSeconds(1)).TotalMilliseconds;
        foreach (var r in runs.Values.Where(r => r.Status == RunStatus.Running))
        {
            var until = (long?)await db.HashGetAsync($"{{{_prefix}}}:run:{r.Id}", "lease_until") ?? 0;
            if (nowMs - until > bound) _report.Violation($"G4: run {r.Id} is Running with a lease expired {nowMs - until} ms ago");
        }

        // G2/G3, per run, per step, from the ledger and the records.
        var stepRecords = 0;
        var checkedReruns = 0;
        var unverifiable = 0;
        foreach (var (id, list) in steps)
        {
            foreach (var s in list)
            {
                if (s.Status != RunStatus.Succeeded) continue;
                stepRecords++;
                if (s.Attempt > MaxAttempts) _report.Violation($"G8: step {id}/{s.Name} recorded at attempt {s.Attempt} > {MaxAttempts}");
                if (s.Output is not { ValueKind: JsonValueKind.Object } o || !o.TryGetProperty("exec", out var execEl)) continue; // a child-wait step
                var exec = execEl.GetString()!;
                if (!ledger.Starts.TryGetValue(exec, out var start))
                {
                    _report.Violation($"G2: step {id}/{s.Name} recorded execution {exec}, which the ledger never started");
                    continue;
                }
                if (!ledger.Ends.Contains(exec)) _report.Violation($"G2: step {id}/{s.Name} recorded execution {exec}, whose body never returned");
                // Acknowledged results agree with the record (recorded at most once; no acknowledged record lost).
                foreach (var ack in ledger.ByStep[(id, s.Name)].Where(l => l.Kind == "ack" && l.Extra != exec))
                    _report.Violation($"G2: step {id}/{s.Name}: handler {ack.Inv} got result of execution {ack.Extra}, but Redis recorded {exec}");
                var recToken = ledger.TokenOf(start.Inv);
                if (recToken is null) { unverifiable++; continue; }
                checkedReruns++;
                // Never ran again: no later lease holder (a higher token) started this step.
                foreach (var again in ledger.ByStep[(id, s.Name)].Where(l => l.Kind == "start" && l.Extra != exec))
                    if (ledger.TokenOf(again.Inv) is { } t && t > recToken)
                        _report.Violation($"G2: step {id}/{s.Name} recorded by token {recToken} ran again under token {t} (pid {again.Pid}, attempt {again.Attempt})");
                // Fencing: recorded before any later holder began (a later holder's claim fences the earlier one).
                CheckFenced(ledger, id, recToken.Value, s.FinishedAt!.Value.ToUnixTimeMilliseconds(), $"step {s.Name}");
            }
            // An acknowledged step has a record (unless the run was purged).
            foreach (var ack in ledger.ByRun[id].Where(l => l.Kind == "ack").Select(l => l.Step).Distinct())
                if (!list.Any(s => s.Name == ack && s.Status == RunStatus.Succeeded))
                    _report.Violation($"G1/G2: step {id}/{ack} was acknowledged to a handler but has no succeeded record");
        }
        _report.Count("step records checked", stepRecords);
        _report.Count("step records with known recording token", checkedReruns);
        _report.Count("step records with unknown recording token (skipped)", unverifiable);
        _report.Count("step executions started (ledger)", ledger.Lines.Count(l => l.Kind == "start"));
        _report.Count("step executions that re-ran an unrecorded step", ledger.Lines.Where(l => l.Kind == "start").GroupBy(l => (l.Run, l.Step)).Count(g => g.Count() > 1));

        foreach (var r in runs.Values)
        {
            // G8: attempts counted in Redis, never beyond MaxAttempts; the ledger agrees.
            if (r.Attempt > r.MaxAttempts) _report.Violation($"G8: run {r.Id} attempt {r.Attempt} > max {r.MaxAttempts}");
            var maxLedgerAttempt = ledger.ByRun[r.Id].Select(l => l.Attempt).DefaultIfEmpty(0).Max();
            if (maxLedgerAttempt > r.MaxAttempts) _report.Violation($"G8: run {r.Id} ran attempt {maxLedgerAttempt} > max {r.MaxAttempts}");
            if (maxLedgerAttempt > r.Attempt) _report.Violation($"G8: run {r.Id} ran attempt {maxLedgerAttempt} but Redis counts {r.Attempt}");
            // G3: the completing invocation held the lease when it completed.
            if (r.Status == RunStatus.Succeeded && r.Output is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("inv", out var inv)
                && ledger.TokenOf(inv.GetString()!) is { } t)
                CheckFenced(ledger, r.Id, t, r.FinishedAt!.Value.ToUnixTimeMilliseconds(), "completion");
        }

        // A healthy run never fails: Redis pauses, restarts and dropped connections are not its workers dying (G4). The
        // one exception is G4's own rule: a run whose last AbandonAfter holders the harness killed (or stopped past the
        // lease) while they ran it is abandoned, rightly (random faults can land on one long step's holders in a row).
        const int abandonAfter = 3; // StartWorkerOptions.AbandonAfter's default, which the fault workers keep
        HashSet<int> dead;
        lock (_gate) dead = [.. _deadPids];
        foreach (var e in emitted.Where(e => NeverFails.Contains(e.Kind)))
        {
            if (!runs.TryGetValue(e.RunId, out var r) || r.Status != RunStatus.Failed) continue;
            var holders = ledger.Invocations.Values.Where(i => i.Run == r.Id).OrderBy(i => i.BeginMs).Select(i => i.Pid).ToList();
            if (r.Error?.Type == "Redflow.AbandonedRun" && holders.Count >= abandonAfter && holders.TakeLast(abandonAfter).All(dead.Contains))
                _report.Count($"never-failing runs abandoned after the harness killed {abandonAfter} holders in a row");
            else
                _report.Violation($"G4: {e.Kind} run {r.Id} of a workflow that never fails failed: {r.Error?.Type}: {r.Error?.Message}");
        }
        _report.Count("never-failing runs abandoned", emitted.Count(e => NeverFails.Contains(e.Kind)
            && runs.TryGetValue(e.RunId, out var r) && r.Error?.Type == "Redflow.AbandonedRun"));

        // Poison and invalid input fail at once (G8).
        foreach (var e in emitted.Where(e => e.Kind is "poison" or "invalid"))
        {
            if (!runs.TryGetValue(e.RunId, out var r) || !IsTerminal(r.Status)) continue;
            var abandoned = r.Error?.Type == "Redflow.AbandonedRun";
            if (r.Status != RunStatus.Failed) _report.Violation($"G8: {e.Kind} run {r.Id} ended {r.Status}");
            else if (!abandoned && e.Kind == "poison" && !(r.Error?.Type ?? "").Contains("NonRetriable", StringComparison.Ordinal))
                _report.Violation($"G8: poison run {r.Id} failed with {r.Error?.Type}");
            else if (!abandoned && e.Kind == "invalid" && !(r.Error?.Type ?? "").Contains("InputValidation", StringComparison.Ordinal))
                _report.Violation($"G8: invalid-input run {r.Id} failed with {r.Error?.Type}");
            if (!abandoned && r.Attempt != 1) _report.Violation($"G8: {e.Kind} run {r.Id} took {r.Attempt} attempts (must fail at once)");
        }
        _report.Count("runs failed with a step error after retries", runs.Values.Count(r => r.Status == RunStatus.Failed && r.Error?.Type == typeof(InvalidOperationException).FullName));

        // G7: one run per idempotency key, every racer got the same id.
        foreach (var (key, got) in _idempotent)
        {
            if (got.Distinct().Count() > 1) _report.Violation($"G7: key {key} answered with runs {string.Join(",", got.Distinct())}");
            var holders = runs.Values.Count(r => r.IdempotencyKey == key);
            if (holders > 1) _report.Violation($"G7: key {key} has {holders} runs");
        }
        _report.Count("idempotency keys raced", _idempotent.Count);
        _report.Count("runs with children (parents)", runs.Values.Count(r => r.Workflow == "fault-parent"));
        _report.Count("child runs", runs.Values.Count(r => r.ParentRunId is not null));
        await CheckWaitsAsync(db, ledger, runs, steps, emitted);
        List<WorkerProcess> all;
        lock (_gate) all = [.. _workers, .. _retired];
        _report.Count("worker processes started", all.Count);
    }

    /// <summary>
    /// G12, durable waits. Sleeper and waiter runs end Succeeded (none lost, left waiting or abandoned). Every sleep is
    /// recorded, no earlier than its due time on the Redis clock (a SleepAsync's from its first wait, the step record's
    /// started_at), and once: every handler that saw it return read a Redis time no earlier than its record (a record
    /// rewritten later would be younger). Every acknowledged signal (or one found in Redis after a failed send) is taken
    /// exactly once, by the run's signal waits in the order sent, and each handler that took a wait's signal got the
    /// recorded one.
    /// </summary>
    private async Task CheckWaitsAsync(IDatabase db, Ledger ledger, Dictionary<string, RunRecord> runs,
        Dictionary<string, IReadOnlyList<StepRecord>> steps, List<Emitted> emitted)
    {
        var lateness = new List<long>();
        int sleeps = 0, signalWaits = 0, wokeSeen = 0, buffered = 0, whileWaiting = 0, leftOver = 0;
        foreach (var e in emitted.Where(e => e.Kind is "sleeper" or "waiter"))
        {
            if (!runs.TryGetValue(e.RunId, out var r) || !_waitPlans.TryGetValue(e.RunId, out var plan)) continue; // G1 reports a missing run
            if (r.Status != RunStatus.Succeeded)
                _report.Violation($"G12: {e.Kind} run {r.Id} ended {r.Status} ({r.Error?.Type}: {r.Error?.Message}); a waiting run is never lost or abandoned");
            var records = steps[e.RunId].ToDictionary(s => s.Name, StringComparer.Ordinal);
            // Sleeps.
            foreach (var w in plan.Where(w => w.Kind is "sleep" or "until"))
            {
                var woke = ledger.ByStep[(e.RunId, w.Step)].Where(l => l.Kind == "woke").ToList();
                if (!records.TryGetValue(w.Step, out var rec) || rec.Status != RunStatus.Succeeded)
                {
                    if (r.Status == RunStatus.Succeeded || woke.Count > 0)
                        _report.Violation($"G12: sleep {e.RunId}/{w.Step} has no succeeded record ({woke.Count} handlers saw it return)");
                    continue;
                }
                sleeps++;
                var started = rec.StartedAt!.Value.ToUnixTimeMilliseconds();
                var finished = rec.FinishedAt!.Value.ToUnixTimeMilliseconds();
                var due = w.Kind == "sleep" ? started + w.Ms : w.At;
                if (finished < due) _report.Violation($"G12: sleep {e.RunId}/{w.Step} ({w.Kind}) recorded at {finished}, {due - finished} ms before it was due ({due})");
                else if (started < due) lateness.Add(finished - due); // a sleep that waited (one reached after its time returns at once)
                if (r.FinishedAt is { } end && end.ToUnixTimeMilliseconds() < due)
                    _report.Violation($"G12: run {e.RunId} finished at {end.ToUnixTimeMilliseconds()}, before its sleep {w.Step} was due ({due})");
                foreach (var l in woke)
                {
                    if (!long.TryParse(l.Extra, out var seen)) continue;
                    wokeSeen++;
                    if (seen < due) _report.Violation($"G12: sleep {e.RunId}/{w.Step} returned to handler {l.Inv} at Redis time {seen}, before it was due ({due})");
                    if (seen < finished) _report.Violation($"G12: sleep {e.RunId}/{w.Step} returned to handler {l.Inv} at Redis time {seen}, before its record ({finished}): recorded again later");
                }
            }
            // Signals.
            var signalSteps = plan.Where(w => w.Kind == "signal").ToList();
            if (signalSteps.Count == 0) continue;
            var sends = _signals.TryGetValue(e.RunId, out var list) ? list : [];
            List<SignalSend> sent;
            lock (sends) sent = [.. sends];
            var byId = sent.ToDictionary(s => s.Id, StringComparer.Ordinal);
            var taken = new List<SignalSend>();
            foreach (var w in signalSteps)
            {
                if (!records.TryGetValue(w.Step, out var rec) || rec.Status != RunStatus.Succeeded) continue; // the run's status says why
                signalWaits++;
                var id = rec.Output is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("id", out var idEl) ? idEl.GetString() : null;
                if (id is null || !byId.TryGetValue(id, out var s))
                {
                    _report.Violation($"G12: signal wait {e.RunId}/{w.Step} recorded {rec.Output?.GetRawText()}, which was never sent");
                    continue;
                }
                taken.Add(s);
                foreach (var l in ledger.ByStep[(e.RunId, w.Step)].Where(l => l.Kind == "took" && l.Extra != id))
                    _report.Violation($"G12: signal wait {e.RunId}/{w.Step}: handler {l.Inv} got signal {l.Extra}, but Redis recorded {id}");
            }
            foreach (var dup in taken.GroupBy(s => s.Id).Where(g => g.Count() > 1))
                _report.Violation($"G12: signal {dup.Key} of run {e.RunId} was taken {dup.Count()} times");
            for (var i = 1; i < taken.Count; i++)
                if (taken[i].Index <= taken[i - 1].Index)
                    _report.Violation($"G12: run {e.RunId} took signal {taken[i].Id} (sent #{taken[i].Index}) after {taken[i - 1].Id} (sent #{taken[i - 1].Index}): out of order");
            var lateLost = taken.Any(s => s.State == SendState.Lost); // a send judged lost landed after all: it took another's place
            if (lateLost) _report.Notes.Add($"run {e.RunId} took a signal whose failed send was judged lost (it landed late)");
            foreach (var s in sent.Where(s => s.State is SendState.Acked or SendState.Confirmed && !taken.Contains(s)))
            {
                if (!lateLost && r.Status == RunStatus.Succeeded)
                    _report.Violation($"G12: signal {s.Id} to run {e.RunId} was acknowledged ({s.State}) but never taken");
            }
            buffered += sent.Count(s => s.State is SendState.Acked && s.StatusAtSend != "waiting");
            whileWaiting += sent.Count(s => s.State is SendState.Acked && s.StatusAtSend == "waiting");
            leftOver += (int)await db.ListLengthAsync($"{{{_prefix}}}:signals:{e.RunId}");
        }
        _report.Count("sleeps checked", sleeps);
        _report.Count("sleep returns seen by handlers (Redis time known)", wokeSeen);
        if (lateness.Count > 0)
        {
            lateness.Sort();
            _report.Count("sleep lateness p50 ms (record - due)", (int)lateness[lateness.Count / 2]);
            _report.Count("sleep lateness max ms (record - due)", (int)lateness[^1]);
        }
        _report.Count("signal waits checked", signalWaits);
        _report.Count("signals acknowledged before their run waited (buffered)", buffered);
        _report.Count("signals acknowledged while their run waited", whileWaiting);
        _report.Count("signals left in buffers after the quiet period", leftOver);
    }

    private void CheckFenced(Ledger ledger, string runId, long token, long recordedMs, string what)
    {
        foreach (var later in ledger.Invocations.Values.Where(i => i.Run == runId && i.Token > token))
            if (recordedMs > later.BeginMs + 2)
                _report.Violation($"G3: {what} of {runId} recorded by token {token} at {recordedMs}, after token {later.Token} began at {later.BeginMs}");
    }

    private async Task<long> RedisNowMsAsync()
    {
        var t = (RedisResult[])(await _raw.GetDatabase().ExecuteAsync("TIME"))!;
        return long.Parse((string)t[0]!, CultureInfo.InvariantCulture) * 1000 + long.Parse((string)t[1]!, CultureInfo.InvariantCulture) / 1000;
    }

    private static bool IsTerminal(RunStatus s) => s is RunStatus.Succeeded or RunStatus.Failed or RunStatus.Canceled;

    public async ValueTask DisposeAsync()
    {
        List<WorkerProcess> all;
        lock (_gate) all = [.. _workers, .. _retired];
        foreach (var w in all) await w.DisposeAsync();
        foreach (var c in _clients) await c.DisposeAsync();
        if (_raw is not null) await _raw.DisposeAsync();
        if (_redis is not null) await _redis.DisposeAsync();
    }
}
