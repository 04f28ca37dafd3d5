using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Redflow.Runtime;

/// <summary>G11: Redis must be 7 or newer and must not evict keys. Checked at worker start.</summary>
internal static class Preconditions
{
    public static async Task CheckAsync(IConnectionMultiplexer mux, StartWorkerOptions options, ILogger logger)
    {
        var server = mux.GetServers().FirstOrDefault(s => s.IsConnected && !s.IsReplica)
            ?? throw new RedflowException("No connected Redis primary to check.");
        var problems = new List<string>();
        if (server.Version.Major < 7)
            problems.Add($"Redis {server.Version} is too old: Redflow needs Redis 7 or newer.");
        try
        {
            var policy = (await server.ConfigGetAsync("maxmemory-policy").ConfigureAwait(false)).FirstOrDefault().Value;
            if (policy is not null && policy != "noeviction")
                problems.Add($"maxmemory-policy is '{policy}': Redis may evict run state. Set it with CONFIG SET maxmemory-policy noeviction (and in redis.conf).");
            var aof = (await server.ConfigGetAsync("appendonly").ConfigureAwait(false)).FirstOrDefault().Value;
            if (aof == "no")
                logger.LogWarning("Redis AOF is off: a Redis restart loses runs emitted since the last snapshot. Enable appendonly yes (appendfsync always or everysec) for durability.");
        }
        catch (Exception ex) when (ex is RedisServerException or RedisCommandException)
        {
            logger.LogWarning("Cannot read the Redis configuration ({Error}); maxmemory-policy must be noeviction for Redflow to be safe.", ex.Message);
        }
        if (problems.Count == 0) return;
        if (options.SkipPreconditionChecks)
        {
            foreach (var p in problems) logger.LogWarning("{Problem} (starting anyway: SkipPreconditionChecks is set)", p);
            return;
        }
        throw new RedflowException(string.Join(" ", problems) + " To start anyway, set StartWorkerOptions.SkipPreconditionChecks.");
    }
}
