using System.Text.Json;
using StackExchange.Redis;

namespace Redflow.Protocol;

/// <summary>Read-only queries of the dashboard and the CLI: leases, idempotency keys, queues per workflow, slots in use.</summary>
internal sealed partial class RedisStore
{
    /// <summary>
    /// An operator's resume (resume.lua): a failed or canceled run back to queued as the same run. Returns 1 when resumed,
    /// 0 when the run is not failed or canceled (and its status), -1 for an unknown run.
    /// </summary>
    public async Task<(int Outcome, string? Status)> ResumeAsync(string runId)
    {
        var r = (RedisResult[])(await CallAsync(ScriptLibrary.Resume, runId).ConfigureAwait(false))!;
        return ((int)r[0], r.Length > 1 ? (string?)r[1] : null);
    }

    /// <summary>Who holds a running run's lease and until when (null when it is not running).</summary>
    public async Task<RunLease?> GetLeaseAsync(string runId)
    {
        var v = await Db.HashGetAsync(Keys.Run(runId), ["status", "worker", "lease_until", "current_step"]).ConfigureAwait(false);
        if ((string?)v[0] != "running" || v[1].IsNullOrEmpty) return null;
        var node = (string)v[1]!;
        var info = await Db.HashGetAsync(Keys.Workers, node).ConfigureAwait(false);
        string? app = null;
        if (!info.IsNull)
        {
            try { app = JsonSerializer.Deserialize<WorkerHeartbeat>((string)info!, RedflowJson.Options)?.App; }
            catch (JsonException) { }
        }
        return new RunLease(node, app, v[2].IsNullOrEmpty ? null : DateTimeOffset.FromUnixTimeMilliseconds((long)v[2]))
        {
            CurrentStep = v[3].IsNullOrEmpty ? null : (string)v[3]!,
        };
    }

    /// <summary>The run each workflow's idempotency key names, if any (every registered workflow is looked at).</summary>
    public async Task<IReadOnlyList<string>> FindByIdempotencyKeyAsync(string key)
    {
        var names = await WorkflowNamesAsync().ConfigureAwait(false);
        var ids = await Task.WhenAll(names.Select(wf => Db.StringGetAsync(Keys.Idempotency(wf, key)))).ConfigureAwait(false);
        return [.. ids.Where(i => !i.IsNullOrEmpty).Select(i => (string)i!).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>Per queue and workflow: ready (its ready list), and the workflow's running, waiting and scheduled runs.</summary>
    public async Task<IReadOnlyList<QueueWorkflowStats>> QueueWorkflowStatsAsync()
    {
        var names = await WorkflowNamesAsync().ConfigureAwait(false);
        var metas = await Task.WhenAll(names.Select(wf => Db.HashGetAsync(Keys.Workflow(wf), "queue"))).ConfigureAwait(false);
        var queues = (await Db.SetMembersAsync(Keys.Queues).ConfigureAwait(false)).Select(q => (string)q!).ToHashSet(StringComparer.Ordinal);
        var rows = new List<(string Queue, string Workflow)>();
        for (var i = 0; i < names.Length; i++) rows.Add(((string?)metas[i] ?? "default", names[i]));
        foreach (var q in queues)
        {
            foreach (var wf in await ReadyWorkflowsAsync(q).ConfigureAwait(false))
                if (!rows.Contains((q, wf))) rows.Add((q, wf));
        }
        var stats = await Task.WhenAll(rows.Select(async r =>
        {
            var ready = ReadyCountAsync(r.Queue, r.Workflow);
            var running = Db.SetLengthAsync(Keys.Running(r.Workflow));
            var waiting = Db.SortedSetLengthAsync(Keys.WorkflowStatus(r.Workflow, RunStatus.Waiting));
            var scheduled = Db.SortedSetLengthAsync(Keys.WorkflowStatus(r.Workflow, RunStatus.Scheduled));
            return new QueueWorkflowStats(r.Queue, r.Workflow, await ready.ConfigureAwait(false), await scheduled.ConfigureAwait(false),
                await running.ConfigureAwait(false), await waiting.ConfigureAwait(false));
        })).ConfigureAwait(false);
        return [.. stats.OrderBy(s => s.Queue, StringComparer.Ordinal).ThenBy(s => s.Workflow, StringComparer.Ordinal)];
    }

    /// <summary>Leases held per worker node: every queue's leases, and the node each leased run names.</summary>
    public async Task<IReadOnlyDictionary<string, int>> LeasesPerNodeAsync()
    {
        var queues = await Db.SetMembersAsync(Keys.Queues).ConfigureAwait(false);
        var leased = (await Task.WhenAll(queues.Select(q => Db.SortedSetRangeByRankAsync(Keys.Leases((string)q!)))).ConfigureAwait(false))
            .SelectMany(x => x).ToArray();
        var nodes = await Task.WhenAll(leased.Select(id => Db.HashGetAsync(Keys.Run((string)id!), "worker"))).ConfigureAwait(false);
        return nodes.Where(n => !n.IsNullOrEmpty).GroupBy(n => (string)n!, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
    }
}
