using System.Diagnostics;
using StackExchange.Redis;

namespace Redflow.Tests.Fixtures;

/// <summary>
/// A redis-server of one test's own, for what must not touch the shared server: its configuration changed, or
/// the server paused, killed and restarted (on the same port and data directory, so under AOF it comes back with
/// what it acknowledged).
/// </summary>
internal sealed class PrivateRedis : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("redflow-private-").FullName;
    private readonly string[] _config;
    private Process? _process;

    private PrivateRedis(string[] config)
    {
        Port = RedisServer.FreePort();
        _config = config;
    }

    public int Port { get; }

    public string Url => $"redis://127.0.0.1:{Port}";

    /// <summary>Starts a server; <paramref name="aof"/> turns on AOF with <c>appendfsync always</c>; <paramref name="config"/> adds settings.</summary>
    public static async Task<PrivateRedis> StartAsync(bool aof = false, params string[] config)
    {
        var persistence = aof ? new[] { "--appendonly", "yes", "--appendfsync", "always" } : ["--appendonly", "no"];
        var server = new PrivateRedis([.. persistence, .. config]);
        await server.RestartAsync();
        return server;
    }

    /// <summary>Starts the server (again, after <see cref="KillAsync"/>: later settings win over the defaults) and waits until it answers.</summary>
    public async Task RestartAsync()
    {
        _process = Process.Start(new ProcessStartInfo("redis-server",
            ["--bind", "127.0.0.1", "--port", Port.ToString(), "--save", "", "--dir", _dir, "--maxmemory-policy", "noeviction", .. _config])
            { RedirectStandardOutput = true, UseShellExecute = false })!;
        _ = _process.StandardOutput.ReadToEndAsync();
        await Task.Run(() => RedisServer.WaitUntilUp($"127.0.0.1:{Port}", _process));
    }

    /// <summary>SIGKILL: the server dies at once, without saving.</summary>
    public async Task KillAsync()
    {
        if (_process is null || _process.HasExited) return;
        _process.Kill();
        await _process.WaitForExitAsync();
    }

    /// <summary><c>CLIENT PAUSE</c>: every client's commands wait for <paramref name="duration"/> (sent from a connection of its own).</summary>
    public async Task PauseAsync(TimeSpan duration)
    {
        await using var mux = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{Port},allowAdmin=true");
        await mux.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", ((long)duration.TotalMilliseconds).ToString());
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
