using Akka.Actor;
using Akka.Event;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>Call a failed run's OnFailure handler (told by the RunActor that recorded the failure).</summary>
internal sealed record CallOnFailure(PendingOnFailure Call);

/// <summary>
/// Makes OnFailure calls: the ones this worker's runs just failed with, and, every reaper interval, pending
/// ones whose failing worker died (claimed from Redis for one lease period). A call is removed from Redis
/// once made, so it is made at least once, and exactly once when no worker dies during it. An exception in
/// the handler is logged and does not change the run's outcome.
/// </summary>
internal sealed class OnFailureActor : ReceiveActor, IWithTimers
{
    private sealed record ClaimDue;
    private sealed record Claimed(IReadOnlyList<PendingOnFailure> Calls);
    private sealed record Called(string RunId);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly WorkerContext _ctx;
    private readonly HashSet<string> _inFlight = new(StringComparer.Ordinal);
    private readonly string[] _workflows;

    public OnFailureActor(WorkerContext ctx)
    {
        _ctx = ctx;
        _workflows = ctx.Workflows.Values.Where(w => w.Options.OnFailure is not null).Select(w => w.Name).ToArray();
        Receive<CallOnFailure>(m => Call(m.Call));
        Receive<ClaimDue>(_ => _ctx.Store.ClaimOnFailureAsync(_ctx.Options.Lease, 10, _workflows)
            .PipeTo(Self, success: calls => new Claimed(calls)));
        Receive<Claimed>(m =>
        {
            _ctx.Health.RedisOk();
            foreach (var call in m.Calls) Call(call);
        });
        Receive<Called>(m => _inFlight.Remove(m.RunId));
        Receive<Status.Failure>(f => _ctx.Health.Failed("claiming pending OnFailure calls", f.Cause)); // retried at the next interval
    }

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart()
    {
        if (_workflows.Length > 0)
            Timers.StartPeriodicTimer("claim", new ClaimDue(), _ctx.Options.ReaperInterval);
    }

    private void Call(PendingOnFailure call)
    {
        if (!_inFlight.Add(call.Run.Id) || !_ctx.Workflows.TryGetValue(call.Run.Workflow, out var definition)
            || definition.Options.OnFailure is not { } handler)
            return;
        var log = _log;
        var store = _ctx.Store;
        RunAsync().PipeTo(Self, success: () => new Called(call.Run.Id), failure: _ => new Called(call.Run.Id));

        async Task RunAsync()
        {
            try
            {
                await Task.Run(() => handler(new OnFailureContext(call.Run, RedflowJson.Parse(call.Input), call.Error))).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                log.Error(ex, "OnFailure handler of workflow '{0}' threw for run {1}; the run stays failed", call.Run.Workflow, call.Run.Id);
            }
            await store.OnFailureDoneAsync(call.Run.Id).ConfigureAwait(false);
        }
    }
}
