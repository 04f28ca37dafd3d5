using Akka.Actor;
using Akka.Event;

namespace Redflow.Runtime;

/// <summary>A RunActor holds this lease: renew it until <see cref="UntrackLease"/>.</summary>
internal sealed record TrackLease(string RunId, string Token, IActorRef Run);

/// <summary>A RunActor no longer holds (or no longer needs) its lease.</summary>
internal sealed record UntrackLease(string RunId, string Token);

/// <summary>A cancel was requested for a run (from the cancel channel); forwarded to the RunActor that holds it.</summary>
internal sealed record CancelRequested(string RunId);

/// <summary>Told to a RunActor: its lease now lasts at least until this monotonic timestamp.</summary>
internal sealed record LeaseRenewed(long LocalDeadline);

/// <summary>Told to a RunActor: its lease is gone (taken over, canceled or finished elsewhere).</summary>
internal sealed record LeaseLost
{
    public static readonly LeaseLost Instance = new();
}

/// <summary>
/// Renews every lease the worker holds in one script call per interval (Lease / 3), in chunks for very many
/// runs. The timer lives here, apart from the RunActors, so no busy step can starve renewal. Each RunActor
/// is told its new local deadline, measured from when the renewal was sent (a conservative bound).
/// </summary>
internal sealed class LeaseRenewer : ReceiveActor, IWithTimers
{
    private const int Chunk = 500;
    private sealed record Renew;
    private sealed record RenewDone(IReadOnlyList<(string RunId, string Token, IActorRef Run)> Runs, long SentAt, int[] Codes);
    private sealed record RenewFailed(Exception Error);

    private readonly WorkerContext _ctx;
    private readonly Dictionary<string, (string Token, IActorRef Run)> _leases = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private bool _inFlight;

    public LeaseRenewer(WorkerContext ctx)
    {
        _ctx = ctx;
        Receive<TrackLease>(m => _leases[m.RunId] = (m.Token, m.Run));
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
        Receive<RenewDone>(OnRenewed);
        Receive<RenewFailed>(m =>
        {
            // The RunActors keep their last local deadline and fence themselves if this keeps failing.
            _inFlight = false;
            _log.Warning(m.Error, "Lease renewal failed for {0} runs; retrying at the next interval", _leases.Count);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart() =>
        // Renew every third of the lease: two renewals can fail before a lease is at risk.
        Timers.StartPeriodicTimer("renew", new Renew(), _ctx.Options.Lease / 3);

    private void StartRenewal()
    {
        if (_inFlight || _leases.Count == 0) return; // never overlap renewals
        _inFlight = true;
        var runs = _leases.Select(kv => (kv.Key, kv.Value.Token, kv.Value.Run)).ToList();
        var sentAt = WorkerContext.Now();
        var store = _ctx.Store;
        var lease = _ctx.Options.Lease;
        RenewAllAsync().PipeTo(Self, success: codes => new RenewDone(runs, sentAt, codes), failure: ex => new RenewFailed(ex));

        async Task<int[]> RenewAllAsync()
        {
            var chunks = runs.Chunk(Chunk).Select(c => store.RenewAsync(lease, c.Select(r => (r.Key, r.Token)).ToList()));
            var results = await Task.WhenAll(chunks).ConfigureAwait(false);
            return results.SelectMany(r => r.Codes).ToArray();
        }
    }

    private void OnRenewed(RenewDone done)
    {
        _inFlight = false;
        var deadline = WorkerContext.After(done.SentAt, _ctx.Options.Lease);
        for (var i = 0; i < done.Runs.Count; i++)
        {
            var (runId, _, run) = done.Runs[i];
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
    }
}
