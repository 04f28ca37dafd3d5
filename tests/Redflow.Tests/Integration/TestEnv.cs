using Redflow.Protocol;
using StackExchange.Redis;

namespace Redflow.Tests.Integration;

/// <summary>What integration tests need from the shared Redis (<see cref="Fixtures.RedisServer"/>): its URL, a fresh prefix per test, raw access.</summary>
internal static class TestEnv
{
    private static readonly Lazy<ConnectionMultiplexer> Mux = new(() => ConnectionMultiplexer.Connect(RedisConnection.Parse(Url)));

    public static string Url => Fixtures.RedisServer.Url;

    public static string NewPrefix() => "t" + Guid.NewGuid().ToString("N")[..10];

    public static IDatabase Db => Mux.Value.GetDatabase();

    public static RedisStore Store(string prefix) => new(Mux.Value, new Keys(prefix));
}
