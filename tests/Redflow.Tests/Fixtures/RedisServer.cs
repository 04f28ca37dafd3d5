using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;
using Testcontainers.Redis;

namespace Redflow.Tests.Fixtures;

/// <summary>
/// The one Redis server of the test assembly: <c>REDIS_URL</c> if set; else a throwaway <c>redis-server</c> (from apt)
/// on a free loopback port, stopped when the test process exits; else a Testcontainers.Redis container. Tests share
/// it and keep apart by key prefix, so they run in parallel.
/// </summary>
internal static class RedisServer
{
    private static readonly Lazy<string> LazyUrl = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    public static string Url => LazyUrl.Value;

    private static string Start()
    {
        if (Environment.GetEnvironmentVariable("REDIS_URL") is { Length: > 0 } url) return url;
        return TryStartLocal() ?? StartContainer();
    }

    /// <summary>Starts redis-server on a free loopback port with persistence off, or null when it is not installed.</summary>
    private static string? TryStartLocal()
    {
        var port = FreePort();
        var dir = Directory.CreateTempSubdirectory("redflow-tests-").FullName;
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
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // not installed
        }
        _ = process.StandardOutput.ReadToEndAsync();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { process.Kill(); } catch (InvalidOperationException) { }
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        };
        var url = $"redis://127.0.0.1:{port}";
        WaitUntilUp($"127.0.0.1:{port}", process);
        return url;
    }

    private static string StartContainer()
    {
        var container = new RedisBuilder("redis:7.2").Build();
        container.StartAsync().GetAwaiter().GetResult();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => container.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return container.GetConnectionString(); // host:port, a StackExchange.Redis configuration string
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

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
