using Redflow.ClusterTests.Fixtures;
using Redflow.Protocol;
using StackExchange.Redis;

namespace Redflow.Tests.Integration;

/// <summary>
/// The cluster twin of Redflow.Tests' TestEnv: the same members, pointed at the shared Redis Cluster
/// (<see cref="SharedCluster"/>), so the single-server integration tests linked into this project run unchanged on a
/// cluster. The URL is a StackExchange.Redis configuration string naming all six nodes.
/// </summary>
internal static class TestEnv
{
    private static readonly Lazy<ConnectionMultiplexer> Mux = new(() => ConnectionMultiplexer.Connect(RedisConnection.Parse(Url)));

    public static string Url => SharedCluster.Instance.ConfigurationString;

    public static string NewPrefix() => "t" + Guid.NewGuid().ToString("N")[..10];

    public static IDatabase Db => Mux.Value.GetDatabase();

    public static RedisStore Store(string prefix) => new(Mux.Value, new Keys(prefix));
}
