using System.Text.Json;
using Redflow.Protocol;

namespace Redflow.Runtime;

/// <summary>Publishes a worker's workflows and heartbeat (the register script): at start and every few seconds.</summary>
internal static class Registration
{
    /// <summary>The version this worker runs, as its heartbeat publishes it: Redflow.Actors' informational version (the package version).</summary>
    private static readonly string? Version = typeof(Registration).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion.Split('+')[0];

    public static Task RegisterAsync(WorkerContext ctx)
    {
        var o = ctx.Options;
        var info = JsonSerializer.Serialize(new WorkerHeartbeat(o.App, o.EffectiveQueues, o.Concurrency, Version), RedflowJson.Options);
        var workflows = ctx.Workflows.Values.Select(w => new WorkflowRegistration(
            w.Name, w.Options.Queue, w.Options.MaxConcurrency, w.Options.MaxAttempts, w.Options.Retention, w.Options.OnFailure is not null,
            JsonSerializer.Serialize(w.Options.Cron.Select(t =>
            {
                var s = CronSchedule.Parse(t, w.Name);
                return new PublishedCron(s.Id, t.Expression, t.Timezone, RedflowJson.Serialize(t.Input));
            }), RedflowJson.Options),
            string.Join('\n', w.Options.Events.Select(e => e.Name).Distinct(StringComparer.Ordinal)))
        {
            MaxConcurrencyPerKey = w.Options.MaxConcurrencyPerKey, RateLimit = w.Options.RateLimit, Debounce = w.Options.Debounce,
        }).ToList();
        return ctx.Store.RegisterAsync(o.App, ctx.Node, info, workflows);
    }
}
