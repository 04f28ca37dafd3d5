using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Redflow.Runtime;

/// <summary>
/// G11: Redis must be 7 or newer and must not evict keys. Checked at worker start on every connected node: on a
/// Redis Cluster (or a primary with replicas) any primary may own the namespace's slot, and any replica may become
/// its primary in a failover, so one evicting or old node is enough to lose run state.
/// </summary>
internal static class Preconditions
{
    public static async Task CheckAsync(IConnectionMultiplexer mux, StartWorkerOptions options, ILogger logger)
    {
        var servers = mux.GetServers().Where(s => s.IsConnected).ToList();
        if (!servers.Any(s => !s.IsReplica))
            throw new RedflowException("No connected Redis primary to check.");
        var problems = new List<string>();
        var aofOff = new List<string>();
        foreach (var server in servers)
        {
            var at = servers.Count > 1 ? $" (on {server.EndPoint})" : "";
            if (server.Version.Major < 7)
                problems.Add($"Redis {server.Version}{at} is too old: Redflow needs Redis 7 or newer.");
            try
            {
                var policy = (await server.ConfigGetAsync("maxmemory-policy").ConfigureAwait(false)).FirstOrDefault().Value;
                if (policy is not null && policy != "noeviction")
                    problems.Add($"maxmemory-policy is '{policy}'{at}: Redis may evict run state. Set it with CONFIG SET maxmemory-policy noeviction (and in redis.conf).");
                var aof = (await server.ConfigGetAsync("appendonly").ConfigureAwait(false)).FirstOrDefault().Value;
                if (aof == "no") aofOff.Add(server.EndPoint?.ToString() ?? "?");
            }
            catch (Exception ex) when (ex is RedisServerException or RedisCommandException)
            {
                logger.LogWarning("Cannot read the Redis configuration{At} ({Error}); maxmemory-policy must be noeviction for Redflow to be safe.", at, ex.Message);
            }
        }
        if (aofOff.Count > 0)
            logger.LogWarning("Redis AOF is off ({Nodes}): a Redis restart loses runs emitted since the last snapshot. Enable appendonly yes (appendfsync always or everysec) for durability.",
                string.Join(", ", aofOff));
        if (problems.Count == 0) return;
        if (options.SkipPreconditionChecks)
        {
            foreach (var p in problems) logger.LogWarning("{Problem} (starting anyway: SkipPreconditionChecks is set)", p);
            return;
        }
        throw new RedflowException(string.Join(" ", problems) + " To start anyway, set StartWorkerOptions.SkipPreconditionChecks.");
    }
}
