using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Redflow.FaultTests;

/// <summary>A redis-server the harness owns: AOF with fsync on every write, debug commands allowed from loopback.</summary>
internal sealed class RedisServer : IAsyncDisposable
{
    private Process? _process;

    private RedisServer(int port, string dir)
    {
        Port = port;
        Dir = dir;
    }

    public int Port { get; }

    public string Dir { get; }

    /// <summary>A StackExchange.Redis configuration string for this server.</summary>
    public string Config => $"127.0.0.1:{Port}";

    public static async Task<RedisServer> StartAsync(string dir)
    {
        Directory.CreateDirectory(dir);
        var server = new RedisServer(FreePort(), dir);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>Starts (again) on the same port and directory: the AOF there is loaded.</summary>
    public async Task StartAgainAsync()
    {
        var info = new ProcessStartInfo("/usr/bin/redis-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", "always",
                     "--enable-debug-command", "local", "--dir", Dir, "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no" })
            info.ArgumentList.Add(a);
        _process = Process.Start(info)!;
        _ = _process.StandardOutput.ReadToEndAsync();
        _ = _process.StandardError.ReadToEndAsync();
        var until = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < until)
        {
            if ((await CliAsync("PING")).Trim() == "PONG") return;
            await Task.Delay(50);
        }
        throw new InvalidOperationException($"redis-server on port {Port} did not answer PING");
    }

    /// <summary>SHUTDOWN: Redis flushes the AOF and exits.</summary>
    public async Task ShutdownAsync()
    {
        await CliAsync("SHUTDOWN");
        await WaitExitAsync();
    }

    /// <summary>SIGKILL the server: only what the AOF fsynced survives (appendfsync always: every acknowledged write).</summary>
    public async Task KillAsync()
    {
        _process?.Kill();
        await WaitExitAsync();
    }

    private async Task WaitExitAsync()
    {
        if (_process is null) return;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(cts.Token);
        _process.Dispose();
        _process = null;
    }

    /// <summary>Runs redis-cli against this server (admin commands of the fault injector), returns its output.</summary>
    public async Task<string> CliAsync(params string[] args)
    {
        var info = new ProcessStartInfo("/usr/bin/redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-p");
        info.ArgumentList.Add(Port.ToString());
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return await output + await error;
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false }) await KillAsync();
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}

/// <summary>A Redflow.FaultWorker process: started, killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT).</summary>
internal sealed class FaultWorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<(DateTimeOffset At, long Heap, long WorkingSet)> _memory = [];

    private FaultWorkerProcess(Process process, string node)
    {
        _process = process;
        Node = node;
    }

    public int Pid => _process.Id;

    public string Node { get; }

    public bool Killed { get; private set; }

    public bool Paused { get; private set; }

    public IReadOnlyList<(DateTimeOffset At, long Heap, long WorkingSet)> Memory
    {
        get { lock (_memory) return [.. _memory]; }
    }

    public static async Task<FaultWorkerProcess> StartAsync(string config, string prefix, string ledger, TimeSpan lease, int concurrency)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { DllPath(), config, prefix, ledger, ((int)lease.TotalMilliseconds).ToString(), concurrency.ToString() })
            info.ArgumentList.Add(arg);
        var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string? node = null;
        var ready = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
                if (line.StartsWith("ready ", StringComparison.Ordinal)) return node = line[6..];
            return null;
        });
        if (await ready.WaitAsync(TimeSpan.FromSeconds(90)) is null)
            throw new InvalidOperationException($"The fault worker exited before it was ready: {await stderr}");
        var worker = new FaultWorkerProcess(process, node!);
        _ = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                var parts = line.Split(' ');
                if (parts is ["mem", var heap, var ws])
                    lock (worker._memory) worker._memory.Add((DateTimeOffset.UtcNow, long.Parse(heap), long.Parse(ws)));
            }
        });
        return worker;
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void Kill()
    {
        Killed = true;
        try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
    }

    public Task PauseAsync()
    {
        Paused = true;
        return Signal("-STOP");
    }

    public async Task ResumeAsync()
    {
        await Signal("-CONT");
        Paused = false;
    }

    private async Task Signal(string signal)
    {
        using var p = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { signal, Pid.ToString() }, UseShellExecute = false })!;
        await p.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            if (Paused) await Signal("-CONT");
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    /// <summary>The fault worker's dll, built beside this test assembly (same configuration).</summary>
    private static string DllPath()
    {
        var testBin = AppContext.BaseDirectory; // tests/Redflow.FaultTests/bin/<Configuration>/net10.0/
        var tfm = new DirectoryInfo(testBin).Name;
        var configuration = new DirectoryInfo(testBin).Parent!.Name;
        var path = Path.GetFullPath(Path.Combine(testBin, "..", "..", "..", "..", "Redflow.FaultWorker", "bin", configuration, tfm, "Redflow.FaultWorker.dll"));
        return File.Exists(path) ? path : throw new FileNotFoundException("Build tests/Redflow.FaultWorker first.", path);
    }
}
