using Akka.Actor;

namespace Redflow.Runtime;

/// <summary>A RunActor holds this lease: renew it until <see cref="UntrackLease"/>; each renewal records <paramref name="Progress"/>'s step.</summary>
internal sealed record TrackLease(string RunId, string Token, TurnRef Run, RunProgress Progress);

/// <summary>
/// The step a run is in, written by its RunActor as steps start and end and read by the renewer, which records it with
/// the next renewal (so the dashboard shows a running run's current step without a Redis write per step). The one
/// piece of state two actors share: a single reference, written and read whole.
/// </summary>
internal sealed class RunProgress
{
    private string? _step;

    /// <summary>The step started last while any step runs; null between steps.</summary>
    public string? Step
    {
        get => Volatile.Read(ref _step);
        set => Volatile.Write(ref _step, value);
    }
}

/// <summary>A RunActor no longer holds (or no longer needs) its lease.</summary>
internal sealed record UntrackLease(string RunId, string Token);

/// <summary>Told to the renewer by a RunActor whose claim was answered late: renew now, not at the next interval.</summary>
internal sealed record RenewNow
{
    public static readonly RenewNow Instance = new();
}

/// <summary>
/// Renews every lease the worker holds in one script call per interval (Lease / 3), in chunks for very many
/// runs; with none, the call only marks the worker seen. The timer lives here, apart from the RunActors, so no busy step can starve renewal. Each RunActor
/// is told its new local deadline: the deadline Redis set, on the worker's estimate of the Redis clock
/// (<see cref="RedisClock"/>: never later than the renewal's send time plus the lease).
/// </summary>
internal sealed class LeaseRenewer : ReceiveActor, IWithTimers
{
    private const int Chunk = 500;
    private sealed record Renew;
    private sealed record RenewDone(IReadOnlyList<(string RunId, string Token, TurnRef Run, string? Step)> Runs, long SentAt, long ReceivedAt, long DeadlineMs, int[] Codes);
    private sealed record RenewFailed(Exception Error);

    private readonly WorkerContext _ctx;
    private readonly Dictionary<string, (string Token, TurnRef Run, RunProgress Progress)> _leases = new(StringComparer.Ordinal);
    private bool _inFlight;
    private bool _renewAgain; // a RenewNow came while a renewal was in flight

    public LeaseRenewer(WorkerContext ctx)
    {
        _ctx = ctx;
        Receive<TrackLease>(m => _leases[m.RunId] = (m.Token, m.Run, m.Progress));
        Receive<UntrackLease>(m =>
        {
            // Only the holder of this token: a stale actor of a run taken over must not drop the new holder's lease.
            if (_leases.TryGetValue(m.RunId, out var lease) && lease.Token == m.Token) _leases.Remove(m.RunId);
        });
        Receive<CancelRequested>(m =>
        {
            if (_leases.TryGetValue(m.RunId, out var lease)) lease.Run.Tell(m);
        });
        Receive<Renew>(_ => StartRenewal());
        Receive<RenewNow>(_ =>
        {
            if (_inFlight) _renewAgain = true;
            else StartRenewal();
        });
        Receive<RenewDone>(OnRenewed);
        Receive<RenewFailed>(m =>
        {
            // The RunActors keep their last local deadline and fence themselves if this keeps failing.
            _inFlight = false;
            _renewAgain = false;
            _ctx.Health.Failed($"renewing {_leases.Count} leases", m.Error);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart() =>
        // Renew every third of the lease: two renewals can fail before a lease is at risk.
        Timers.StartPeriodicTimer("renew", new Renew(), _ctx.Options.Lease / 3);

    private void StartRenewal()
    {
        if (_inFlight) return; // never overlap renewals
        // With no lease to renew the call still goes out: it marks the worker seen (workers:seen), which is how the
        // reaper tells a worker that lost a lease to a Redis hiccup from one that died with the run (G4). Without it
        // an idle worker is seen only at its heartbeat (5 s), later than a short lease's next expiry.
        if (_leases.Count == 0) _ctx.Health.Renewed(); // nothing to renew is renewal on time
        _inFlight = true;
        var runs = _leases.Select(kv => (kv.Key, kv.Value.Token, kv.Value.Run, kv.Value.Progress.Step)).ToList();
        var sentAt = WorkerContext.Now();
        var (store, lease, node) = (_ctx.Store, _ctx.Options.Lease, _ctx.Node);
        RenewAllAsync().PipeTo(Self, success: r => new RenewDone(runs, sentAt, WorkerContext.Now(), r.DeadlineMs, r.Codes), failure: ex => new RenewFailed(ex));

        async Task<(long DeadlineMs, int[] Codes)> RenewAllAsync()
        {
            if (runs.Count == 0) return await store.RenewAsync(lease, node, []).ConfigureAwait(false);
            var chunks = runs.Chunk(Chunk).Select(c => store.RenewAsync(lease, node, c.Select(r => (r.Key, r.Token, r.Step)).ToList()));
            var results = await Task.WhenAll(chunks).ConfigureAwait(false);
            return (results.Min(r => r.DeadlineMs), results.SelectMany(r => r.Codes).ToArray());
        }
    }

    private void OnRenewed(RenewDone done)
    {
        _inFlight = false;
        _ctx.Health.RedisOk();
        _ctx.Health.Renewed();
        var deadline = _ctx.LeaseDeadline(done.DeadlineMs, done.SentAt, done.ReceivedAt);
        for (var i = 0; i < done.Runs.Count; i++)
        {
            var (runId, _, run, _) = done.Runs[i];
            switch (done.Codes[i])
            {
                case 0:
                    _leases.Remove(runId);
                    run.Tell(LeaseLost.Instance);
                    break;
                case 2:
                    run.Tell(new LeaseRenewed(deadline));
                    run.Tell(new CancelRequested(runId)); // fallback for a lost cancel message
                    break;
                default:
                    run.Tell(new LeaseRenewed(deadline));
                    break;
            }
        }
        if (_renewAgain)
        {
            _renewAgain = false;
            StartRenewal();
        }
    }
}
