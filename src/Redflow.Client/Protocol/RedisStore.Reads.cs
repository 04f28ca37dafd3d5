using System.Globalization;
using System.Text.Json;
using StackExchange.Redis;

namespace Redflow.Protocol;

/// <summary>Cancel and the inspection reads: listings use the status indexes the scripts keep, never a key scan.</summary>
internal sealed partial class RedisStore
{
    /// <summary>How long a worker stays listed as live after its last heartbeat.</summary>
    internal static readonly TimeSpan WorkerLiveness = TimeSpan.FromSeconds(30);

    /// <summary>A client's cancel request (no token), or the lease holder acknowledging one (its token).</summary>
    public async Task<bool> CancelAsync(string runId, string? reason, string? token = null) =>
        (long)await CallAsync(ScriptLibrary.Cancel, runId, reason ?? "", token ?? "").ConfigureAwait(false) == 1;

    public async Task<IReadOnlyList<RunRecord>> ListRunsAsync(ListRunsParams p)
    {
        if (p.Limit is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(p), p.Limit, "ListRunsParams.Limit must be 1 to 1000.");
        if (p.Offset < 0) throw new ArgumentOutOfRangeException(nameof(p), p.Offset, "ListRunsParams.Offset must not be negative.");
        double max = p.Before is { } before ? before.ToUnixTimeMilliseconds() - 1 : double.PositiveInfinity;
        double min = p.After is { } after ? after.ToUnixTimeMilliseconds() : double.NegativeInfinity;
        if (p.Queue is not null) Names.Check(p.Queue, "queue", allowColon: false);
        if (p is { Status: RunStatus.Running, ParentRunId: null })
            return await ListRunningAsync(p, min, max).ConfigureAwait(false);
        // The indexes are per workflow (one ZADD per transition, not two): without a workflow filter, the
        // page is merged from every workflow's index, newest first.
        RedisKey[] indexes = (p.Workflow, p.Status, p.ParentRunId) switch
        {
            (_, _, { } parent) => [Keys.Children(Names.Check(parent, "parent run id"))],
            ({ } wf, { } s, _) => [Keys.WorkflowStatus(Names.Check(wf, "workflow name"), s)],
            ({ } wf, null, _) => [Keys.WorkflowRuns(Names.Check(wf, "workflow name"))],
            (null, { } s, _) => [.. (await WorkflowNamesAsync().ConfigureAwait(false)).Select(wf => Keys.WorkflowStatus(wf, s))],
            _ => [.. (await WorkflowNamesAsync().ConfigureAwait(false)).Select(Keys.WorkflowRuns)],
        };
        // With a parent filter the other filters apply in memory, over a bounded window of the children; a queue
        // filter always does (runs are not indexed by queue).
        var filterInMemory = (p.ParentRunId is not null && (p.Workflow is not null || p.Status is not null)) || p.Queue is not null;
        var window = ListRunsParams.FilterWindow;
        RedisValue[] ids;
        if (indexes.Length == 1)
            ids = await Db.SortedSetRangeByScoreAsync(indexes[0], min, max, Exclude.None, Order.Descending,
                filterInMemory ? 0 : p.Offset, filterInMemory ? window : p.Limit).ConfigureAwait(false);
        else
        {
            var pages = await Task.WhenAll(indexes.Select(index => Db.SortedSetRangeByScoreWithScoresAsync(index, min, max,
                Exclude.None, Order.Descending, 0, filterInMemory ? window : p.Offset + p.Limit))).ConfigureAwait(false);
            var merged = pages.SelectMany(page => page)
                .OrderByDescending(e => e.Score).ThenByDescending(e => (string)e.Element!, StringComparer.Ordinal);
            ids = filterInMemory ? [.. merged.Take(window).Select(e => e.Element)] : [.. merged.Skip(p.Offset).Take(p.Limit).Select(e => e.Element)];
        }
        if (p is { Queue: { } onQueue, ParentRunId: null })
        {
            // The window's queues (one field each), then whole records for the page only.
            var queues = await Task.WhenAll(ids.Select(id => Db.HashGetAsync(Keys.Run((string)id!), "queue"))).ConfigureAwait(false);
            var page = ids.Where((_, i) => (string?)queues[i] == onQueue).Skip(p.Offset).Take(p.Limit);
            return [.. (await Task.WhenAll(page.Select(id => GetRunAsync(id!))).ConfigureAwait(false)).OfType<RunRecord>()];
        }
        var runs = await Task.WhenAll(ids.Select(id => GetRunAsync(id!))).ConfigureAwait(false);
        IEnumerable<RunRecord> found = runs.OfType<RunRecord>();
        if (filterInMemory)
            found = found.Where(r => (p.Workflow is null || r.Workflow == p.Workflow) && (p.Status is null || r.Status == p.Status)
                                     && (p.Queue is null || r.Queue == p.Queue))
                .Skip(p.Offset).Take(p.Limit);
        return found.ToList();
    }

    /// <summary>
    /// Running runs, from the workflows' running sets (their concurrency slots, so at most the workers' total
    /// concurrency): creation times are read for all of them, records only for the page.
    /// </summary>
    private async Task<IReadOnlyList<RunRecord>> ListRunningAsync(ListRunsParams p, double min, double max)
    {
        string[] workflows = p.Workflow is { } wf ? [Names.Check(wf, "workflow name")] : await WorkflowNamesAsync().ConfigureAwait(false);
        var ids = (await Task.WhenAll(workflows.Select(w => Db.SetMembersAsync(Keys.Running(w)))).ConfigureAwait(false)).SelectMany(m => m).ToArray();
        var created = await Task.WhenAll(ids.Select(id => Db.HashGetAsync(Keys.Run(id!), "created_at"))).ConfigureAwait(false);
        var page = ids.Zip(created, (id, c) => (Id: (string)id!, Created: c.IsNull ? double.NaN : (double)c))
            .Where(e => e.Created >= min && e.Created <= max)
            .OrderByDescending(e => e.Created).ThenByDescending(e => e.Id, StringComparer.Ordinal);
        if (p.Queue is null)
        {
            var runs = await Task.WhenAll(page.Skip(p.Offset).Take(p.Limit).Select(e => GetRunAsync(e.Id))).ConfigureAwait(false);
            return [.. runs.OfType<RunRecord>()];
        }
        var all = await Task.WhenAll(page.Select(e => GetRunAsync(e.Id))).ConfigureAwait(false);
        return [.. all.OfType<RunRecord>().Where(r => r.Queue == p.Queue).Skip(p.Offset).Take(p.Limit)];
    }

    /// <summary>How many runs of a workflow are in a status (running runs: its running set).</summary>
    private Task<long> CountAsync(string workflow, RunStatus status) => status == RunStatus.Running
        ? Db.SetLengthAsync(Keys.Running(workflow))
        : Db.SortedSetLengthAsync(Keys.WorkflowStatus(workflow, status));

    /// <summary>Every registered workflow (a run exists only for a registered one).</summary>
    private async Task<string[]> WorkflowNamesAsync() =>
        [.. (await Db.SetMembersAsync(Keys.WorkflowsSet).ConfigureAwait(false)).Select(n => (string)n!)];

    public async Task<IReadOnlyList<WorkflowMeta>> ListWorkflowsAsync()
    {
        var names = await WorkflowNamesAsync().ConfigureAwait(false);
        var metas = await Task.WhenAll(names.Select(GetWorkflowMetaAsync)).ConfigureAwait(false);
        return metas.OfType<WorkflowMeta>().OrderBy(m => m.Name, StringComparer.Ordinal).ToList();
    }

    public async Task<WorkflowMeta?> GetWorkflowMetaAsync(string workflow)
    {
        var metaTask = Db.HashGetAllAsync(Keys.Workflow(workflow));
        var workersTask = Db.HashGetAllAsync(Keys.WorkflowWorkers(workflow));
        var countTasks = Enum.GetValues<RunStatus>().ToDictionary(s => s, s => CountAsync(workflow, s));
        var meta = (await metaTask.ConfigureAwait(false)).ToDictionary(e => (string)e.Name!, e => (string?)e.Value);
        if (meta.Count == 0) return null;
        var workers = await workersTask.ConfigureAwait(false);
        var cron = ParsePublishedCron(meta.GetValueOrDefault("cron") ?? "");
        var paused = await CronPausedAsync([.. cron.Select(t => t.Id)]).ConfigureAwait(false);
        await Task.WhenAll(countTasks.Values).ConfigureAwait(false);
        var rate = int.TryParse(meta.GetValueOrDefault("rate_limit"), out var rl) && long.TryParse(meta.GetValueOrDefault("rate_period_ms"), out var rp)
            ? new RateLimit(rl, TimeSpan.FromMilliseconds(rp)) : null;
        var held = await HeldBackAsync(workflow, meta.GetValueOrDefault("queue") ?? "default", rate).ConfigureAwait(false);
        return new WorkflowMeta
        {
            Name = workflow,
            Queue = meta.GetValueOrDefault("queue") ?? "default",
            MaxConcurrency = int.TryParse(meta.GetValueOrDefault("max_concurrency"), out var mc) ? mc : 1,
            MaxAttempts = int.TryParse(meta.GetValueOrDefault("max_attempts"), out var ma) ? ma : 1,
            Cron = CronInfo(workflow, cron, paused),
            Workers = workers.Select(w => new WorkflowWorker(w.Name!, DateTimeOffset.FromUnixTimeMilliseconds((long)w.Value))).OrderBy(w => w.App, StringComparer.Ordinal).ToList(),
            RunCounts = countTasks.ToDictionary(kv => kv.Key, kv => kv.Value.Result),
            MaxConcurrencyPerKey = int.TryParse(meta.GetValueOrDefault("key_cap"), out var kc) ? kc : null,
            RateLimit = rate,
            Debounce = long.TryParse(meta.GetValueOrDefault("debounce_ms"), out var dm)
                ? new DebounceOptions(TimeSpan.FromMilliseconds(dm)) { MaxWait = long.TryParse(meta.GetValueOrDefault("debounce_max_ms"), out var mw) ? TimeSpan.FromMilliseconds(mw) : null }
                : null,
            HeldBack = held.Sum(k => k.Ready),
            HeldBackKeys = [.. held.OrderByDescending(k => k.Ready).ThenBy(k => k.Key, StringComparer.Ordinal).Take(10)],
        };
    }

    /// <summary>At most this many parked keys of a workflow are read for its held-back counts.</summary>
    internal const int HeldBackKeysRead = 5000;

    /// <summary>
    /// The ready runs a workflow's flow control holds back now: per parked key (at its cap or rate limit) its queued runs,
    /// and, while the workflow's own rate window is full, the runs without a key in its queue's ready list.
    /// </summary>
    private async Task<List<HeldBackKey>> HeldBackAsync(string workflow, string queue, RateLimit? rate)
    {
        var keys = (await Db.SetMembersAsync(Keys.WorkflowParked(workflow)).ConfigureAwait(false)).Take(HeldBackKeysRead).Select(k => (string)k!).ToList();
        var batch = Db.CreateBatch();
        var parked = keys.Select(k => batch.SetMembersAsync(Keys.KeyParked(workflow, k))).ToList();
        var running = keys.Select(k => batch.SetLengthAsync(Keys.KeyRunning(workflow, k))).ToList();
        batch.Execute();
        await Task.WhenAll(parked).ConfigureAwait(false);
        var lengths = new List<Task<long>[]>();
        batch = Db.CreateBatch();
        for (var i = 0; i < keys.Count; i++)
        {
            lengths.Add([.. parked[i].Result.Select(m => (string)m!).Select(m => m.Split('\n', 2)).Where(m => m.Length == 2 && int.TryParse(m[1], CultureInfo.InvariantCulture, out _))
                .Select(m => batch.ListLengthAsync(Keys.KeyReady(m[0], int.Parse(m[1], CultureInfo.InvariantCulture), workflow, keys[i])))]);
        }
        batch.Execute();
        var result = new List<HeldBackKey>();
        for (var i = 0; i < keys.Count; i++)
        {
            var ready = (await Task.WhenAll(lengths[i]).ConfigureAwait(false)).Sum();
            if (ready > 0) result.Add(new HeldBackKey(keys[i], ready, await running[i].ConfigureAwait(false)));
        }
        if (rate is not null)
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var inWindow = await Db.SortedSetLengthAsync(Keys.Rate(workflow, ""), now - (long)rate.Period.TotalMilliseconds, double.PositiveInfinity, Exclude.Start).ConfigureAwait(false);
            if (inWindow >= rate.Limit)
            {
                var own = await Db.ListLengthAsync(Keys.Ready(queue, workflow)).ConfigureAwait(false);
                if (own > 0) result.Add(new HeldBackKey("", own, await Db.SetLengthAsync(Keys.Running(workflow)).ConfigureAwait(false)));
            }
        }
        return result;
    }

    public async Task<RedflowStats> GetStatsAsync()
    {
        var queues = await Db.SetMembersAsync(Keys.Queues).ConfigureAwait(false);
        var queueStats = await Task.WhenAll(queues.Select(async q => await QueueStatsAsync(q!).ConfigureAwait(false))).ConfigureAwait(false);
        var names = await WorkflowNamesAsync().ConfigureAwait(false);
        var countTasks = Enum.GetValues<RunStatus>().ToDictionary(s => s,
            s => Task.WhenAll(names.Select(wf => CountAsync(wf, s))));
        var cutoff = DateTimeOffset.UtcNow - WorkerLiveness;
        var live = await Db.SortedSetRangeByScoreWithScoresAsync(Keys.WorkersSeen, cutoff.ToUnixTimeMilliseconds()).ConfigureAwait(false);
        var infos = live.Length == 0 ? [] : await Db.HashGetAsync(Keys.Workers, live.Select(l => l.Element).ToArray()).ConfigureAwait(false);
        var counters = await Db.HashGetAllAsync(Keys.Counters).ConfigureAwait(false);
        await Task.WhenAll(countTasks.Values).ConfigureAwait(false);
        var workers = new List<WorkerInfo>();
        for (var i = 0; i < live.Length; i++)
        {
            if (infos[i].IsNull) continue;
            var info = JsonSerializer.Deserialize<WorkerHeartbeat>((string)infos[i]!, RedflowJson.Options)!;
            workers.Add(new WorkerInfo(info.App, live[i].Element!, info.Queues, info.Concurrency, DateTimeOffset.FromUnixTimeMilliseconds((long)live[i].Score))
            {
                Version = info.Version,
            });
        }
        return new RedflowStats
        {
            Queues = queueStats.OrderBy(q => q.Name, StringComparer.Ordinal).ToList(),
            RunCounts = countTasks.ToDictionary(kv => kv.Key, kv => kv.Value.Result.Sum()),
            Workers = workers,
            Counters = counters.ToDictionary(c => (string)c.Name!, c => (long)c.Value),
        };
    }

    /// <summary>Ready, scheduled and running counts of one queue.</summary>
    public async Task<QueueStats> QueueStatsAsync(string queue)
    {
        var scheduled = Db.SortedSetLengthAsync(Keys.Scheduled(queue));
        var running = Db.SortedSetLengthAsync(Keys.Leases(queue));
        // The workflows in the queue's rings, and every registered one (a workflow whose keys are all parked is in no ring).
        var workflows = (await ReadyWorkflowsAsync(queue).ConfigureAwait(false)).Concat(await WorkflowNamesAsync().ConfigureAwait(false)).Distinct(StringComparer.Ordinal);
        var ready = await Task.WhenAll(workflows.Select(wf => ReadyCountAsync(queue, wf))).ConfigureAwait(false);
        return new QueueStats(queue, ready.Sum(), await scheduled.ConfigureAwait(false), await running.ConfigureAwait(false));
    }

    /// <summary>Workflows with ready runs on a queue: those in its rings, one per priority with ready runs.</summary>
    internal async Task<IReadOnlyList<string>> ReadyWorkflowsAsync(string queue)
    {
        var levels = (await Db.SortedSetRangeByRankAsync(Keys.Levels(queue)).ConfigureAwait(false)).Select(p => int.Parse((string)p!, CultureInfo.InvariantCulture)).Prepend(0);
        var rings = await Task.WhenAll(levels.Select(p => Db.ListRangeAsync(Keys.RingAt(queue, p)))).ConfigureAwait(false);
        return [.. rings.SelectMany(r => r).Select(wf => (string)wf!).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>Ready lists longer than this are counted by their length alone (their key markers are not expanded).</summary>
    private const int ReadyListScan = 10_000;

    /// <summary>
    /// Ready (queued, claimable or held back) runs of a workflow on a queue: its ready list at each priority, where a key's
    /// marker stands for the key's queued runs, and the runs of its keys parked there (at their cap or rate limit).
    /// </summary>
    internal async Task<long> ReadyCountAsync(string queue, string workflow)
    {
        var levels = (await Db.SortedSetRangeByRankAsync(Keys.Levels(queue)).ConfigureAwait(false)).Select(p => int.Parse((string)p!, CultureInfo.InvariantCulture)).Prepend(0).ToList();
        long total = 0;
        foreach (var p in levels)
        {
            var list = Keys.ReadyAt(queue, p, workflow);
            var length = await Db.ListLengthAsync(list).ConfigureAwait(false);
            if (length == 0) continue;
            if (length > ReadyListScan) { total += length; continue; }
            var entries = await Db.ListRangeAsync(list).ConfigureAwait(false);
            var markers = entries.Select(e => (string)e!).Where(e => e.StartsWith('\n')).Distinct(StringComparer.Ordinal).ToList();
            total += entries.Length - entries.Count(e => ((string)e!).StartsWith('\n'));
            var keyed = await Task.WhenAll(markers.Select(m => Db.ListLengthAsync(Keys.KeyReady(queue, p, workflow, m[1..])))).ConfigureAwait(false);
            total += keyed.Sum();
        }
        foreach (var key in (await Db.SetMembersAsync(Keys.WorkflowParked(workflow)).ConfigureAwait(false)).Take(HeldBackKeysRead).Select(k => (string)k!))
            foreach (var m in (await Db.SetMembersAsync(Keys.KeyParked(workflow, key)).ConfigureAwait(false)).Select(m => ((string)m!).Split('\n', 2)))
                if (m.Length == 2 && m[0] == queue && int.TryParse(m[1], CultureInfo.InvariantCulture, out var p))
                    total += await Db.ListLengthAsync(Keys.KeyReady(queue, p, workflow, key)).ConfigureAwait(false);
        return total;
    }

    private static IReadOnlyList<CronTriggerInfo> CronInfo(string workflow, IReadOnlyList<PublishedCron> triggers, bool[] paused) =>
        triggers.Select((t, i) =>
        {
            DateTimeOffset? next = null;
            try { next = CronSchedule.Parse(new CronTrigger(t.Expression) { Id = t.Id, Timezone = t.Timezone }, workflow).Next(DateTimeOffset.UtcNow); }
            catch (ArgumentException) { }
            JsonElement? input = null;
            if (t.Input is { } json)
            {
                try { input = JsonDocument.Parse(json).RootElement.Clone(); }
                catch (JsonException) { }
            }
            return new CronTriggerInfo(t.Id, t.Expression, t.Timezone, next) { Paused = paused[i], Input = input };
        }).ToList();
}

/// <summary>
/// A cron trigger as published in the workflow's metadata; <paramref name="Input"/>: the JSON of the runs it starts
/// (null from workers that predate publishing it).
/// </summary>
internal sealed record PublishedCron(string Id, string Expression, string Timezone, string? Input = null);

/// <summary>What a worker publishes about itself with each heartbeat.</summary>
internal sealed record WorkerHeartbeat(string App, IReadOnlyList<string> Queues, int Concurrency, string? Version = null);
