using System.Text.Json;
using StackExchange.Redis;

namespace Redflow.Protocol;

/// <summary>Operator actions on cron triggers: pause, resume, and the published triggers "trigger now" reads.</summary>
internal sealed partial class RedisStore
{
    /// <summary>
    /// Pauses or resumes a cron trigger (cron_pause.lua): 1 changed, 0 already so, -1 the workflow is not registered,
    /// -2 the workflow has no trigger with that id (nothing written for either).
    /// </summary>
    public async Task<int> CronSetPausedAsync(string workflow, string triggerId, bool paused) =>
        (int)await CallAsync(ScriptLibrary.Get("cron_pause"), workflow, triggerId, paused ? "1" : "0").ConfigureAwait(false);

    /// <summary>Whether each trigger is paused, in the order given (one MGET: the keys share the namespace's slot).</summary>
    public async Task<bool[]> CronPausedAsync(IReadOnlyList<string> triggerIds)
    {
        if (triggerIds.Count == 0) return [];
        var values = await Db.StringGetAsync([.. triggerIds.Select(Keys.CronPaused)]).ConfigureAwait(false);
        return [.. values.Select(v => !v.IsNull)];
    }

    /// <summary>A workflow's cron triggers as its workers publish them; null when the workflow is not registered.</summary>
    public async Task<IReadOnlyList<PublishedCron>?> PublishedCronAsync(string workflow)
    {
        var json = await Db.HashGetAsync(Keys.Workflow(workflow), "cron").ConfigureAwait(false);
        if (json.IsNull) return null;
        return ParsePublishedCron(json!);
    }

    private static List<PublishedCron> ParsePublishedCron(string json) =>
        json.Length == 0 ? [] : JsonSerializer.Deserialize<List<PublishedCron>>(json, RedflowJson.Options) ?? [];
}
