using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace Redflow.Dashboard.Tests.Fixtures;

/// <summary>
/// The one Redis server of this test assembly: <c>REDIS_URL</c> if set, else a throwaway <c>redis-server</c> on a
/// free loopback port (persistence off), killed when the test process exits. Tests keep apart by key prefix.
/// (The same approach as tests/Redflow.Tests/Fixtures/RedisServer.cs, without the container fallback.)
/// </summary>
internal static class RedisServer
{
    private static readonly Lazy<string> LazyUrl = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    public static string Url => LazyUrl.Value;

    public static string NewPrefix() => "d" + Guid.NewGuid().ToString("N")[..10];

    private static string Start()
    {
        if (Environment.GetEnvironmentVariable("REDIS_URL") is { Length: > 0 } url) return url;
        var port = FreePort();
        var dir = Directory.CreateTempSubdirectory("redflow-dashboard-tests-").FullName;
        Process process;
        try
        {
            process = Process.Start(new ProcessStartInfo("redis-server",
                ["--bind", "127.0.0.1", "--port", port.ToString(), "--save", "", "--appendonly", "no", "--dir", dir, "--maxmemory-policy", "noeviction"])
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            })!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("The dashboard tests need redis-server on the PATH (apt-get install redis-server) or REDIS_URL.", ex);
        }
        _ = process.StandardOutput.ReadToEndAsync();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { process.Kill(); } catch (InvalidOperationException) { }
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        };
        WaitUntilUp($"127.0.0.1:{port}", process);
        return $"redis://127.0.0.1:{port}";
    }

    private static void WaitUntilUp(string endpoint, Process process)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                using var mux = ConnectionMultiplexer.Connect($"{endpoint},connectTimeout=500");
                if (mux.IsConnected && mux.GetDatabase().Ping() >= TimeSpan.Zero) return;
            }
            catch (RedisConnectionException) when (DateTime.UtcNow < deadline && !process.HasExited)
            {
            }
            if (process.HasExited) throw new InvalidOperationException($"redis-server exited with code {process.ExitCode}.");
            if (DateTime.UtcNow >= deadline) throw new TimeoutException("redis-server did not answer PING within 30 s.");
            Thread.Sleep(50);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
