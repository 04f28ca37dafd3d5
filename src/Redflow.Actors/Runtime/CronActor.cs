using Akka.Actor;
using Akka.Event;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>
/// Starts runs for the cron triggers of this worker's workflows. Every tick it reads each trigger's last handled
/// instant and the Redis clock, picks the due instants by the trigger's misfire policy, and fires them with the
/// cron tick script: one run per (trigger, instant), whatever number of cron actors run at once; a tick is
/// skipped when the workflow is at MaxConcurrency. Holds no state of its own. Runs once per cluster as a
/// singleton (or locally when standalone), under a backoff supervisor that restarts it after a fault; a failed
/// tick (Redis unreachable) is reported to the worker's health and retried with backoff.
/// </summary>
internal sealed class CronActor : ReceiveActor, IWithTimers
{
    private sealed record Tick;
    private sealed record Ticked;
    private sealed record TickFailed(Exception Error);

    /// <summary>How often due triggers are checked.</summary>
    internal static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);

    /// <summary>An instant handled later than this after it was due counts as missed (misfire policy applies).</summary>
    internal static readonly TimeSpan MisfireThreshold = TimeSpan.FromSeconds(3);

    private readonly WorkerContext _ctx;
    private readonly IReadOnlyList<(WorkflowDefinition Workflow, CronSchedule Schedule)> _triggers;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private bool _inFlight;
    private PeriodicCall _ticks = null!; // the periodic tick, backing off while Redis fails

    public CronActor(WorkerContext ctx)
    {
        _ctx = ctx;
        _triggers = ctx.Workflows.Values
            .SelectMany(w => w.Options.Cron.Select(t => (w, CronSchedule.Parse(t, w.Name))))
            .ToList();
        Receive<Tick>(_ =>
        {
            if (_inFlight) return;
            _inFlight = true;
            TickAsync().PipeTo(Self, success: () => new Ticked(), failure: ex => new TickFailed(ex));
        });
        Receive<Ticked>(_ =>
        {
            _inFlight = false;
            _ticks.Succeeded();
        });
        Receive<TickFailed>(m =>
        {
            _inFlight = false;
            _ticks.Failed(m.Error);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart()
    {
        _ticks = new PeriodicCall(Timers, _ctx.Health, "firing cron triggers", new Tick(), Interval);
        if (_triggers.Count > 0) _ticks.Start();
    }

    private async Task TickAsync()
    {
        foreach (var (workflow, schedule) in _triggers)
        {
            var (now, lastMs) = await _ctx.Store.CronStateAsync(schedule.Id).ConfigureAwait(false);
            if (lastMs == 0)
            {
                // First start of this trigger: begin from now, never backfill the past.
                await _ctx.Store.CronAdvanceAsync(schedule.Id, now.ToUnixTimeMilliseconds()).ConfigureAwait(false);
                continue;
            }
            var due = schedule.Expression
                .GetOccurrences(DateTimeOffset.FromUnixTimeMilliseconds(lastMs), now, schedule.Zone, fromInclusive: false, toInclusive: true)
                .Take(1000).ToList();
            if (due.Count == 0) continue;
            var fire = Choose(schedule.Trigger.Misfire, due, now);
            var instants = fire.Select(i => (i.ToUnixTimeMilliseconds(), RunIds.Cron(schedule.Id, i.ToUnixTimeMilliseconds()))).ToList();
            var latest = due[^1].ToUnixTimeMilliseconds();
            if (instants.Count == 0 || instants[^1].Item1 != latest) instants.Add((latest, "")); // skipped misfires are handled too
            var (fired, skipped) = await _ctx.Store.CronTickAsync(workflow.Name, schedule.Id, RedflowJson.Serialize(schedule.Trigger.Input),
                workflow.Options.Queue, workflow.Options.MaxAttempts, TimeSpan.FromHours(24), instants).ConfigureAwait(false);
            var tags = RedflowTelemetry.WorkflowTags(workflow.Name, workflow.Options.Queue);
            if (fired > 0) RedflowTelemetry.CronFired.Add(fired, tags);
            if (skipped > 0) RedflowTelemetry.CronSkipped.Add(skipped, tags);
            if (skipped > 0) _log.Info("Cron trigger {0}: {1} tick(s) skipped, workflow '{2}' is at MaxConcurrency", schedule.Id, skipped, workflow.Name);
            if (fire.Count > 0 && due.Count > fire.Count) _log.Info("Cron trigger {0}: {1} missed tick(s) not replayed ({2})", schedule.Id, due.Count - fire.Count, schedule.Trigger.Misfire);
        }
    }

    /// <summary>The instants to fire among the due ones, by the trigger's misfire policy.</summary>
    internal static IReadOnlyList<DateTimeOffset> Choose(MisfirePolicy policy, IReadOnlyList<DateTimeOffset> due, DateTimeOffset now)
    {
        var onTime = due.Where(i => now - i <= MisfireThreshold).ToList();
        var missed = due.Where(i => now - i > MisfireThreshold).ToList();
        return policy switch
        {
            MisfirePolicy.RunAll => due,
            MisfirePolicy.SkipAll => onTime,
            _ => missed.Count == 0 ? onTime : [missed[^1], .. onTime], // RunOnce: the latest missed tick once, late
        };
    }

    /// <summary>Props of the cron actor under its backoff supervisor (restarts after 0.2 s, growing to 10 s).</summary>
    public static Props SupervisedProps(WorkerContext ctx) =>
        Akka.Pattern.BackoffSupervisor.Props(Akka.Pattern.Backoff.OnFailure(
            Props.Create(() => new CronActor(ctx)), "cron",
            TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10), 0.2, -1));
}
