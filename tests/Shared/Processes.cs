using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Redflow.TestProcesses;

/// <summary>
/// A redis-server of a test's own (linked into the test projects that need one): AOF with fsync on every write unless
/// told otherwise, debug commands allowed from loopback. It can be paused, shut down, killed and started again on the
/// same port and directory (the AOF there is loaded).
/// </summary>
internal sealed class RedisProcess : IAsyncDisposable
{
    private readonly string[] _config;
    private readonly bool _ownsDir;
    private Process? _process;

    private RedisProcess(int port, string dir, bool ownsDir, string[] config)
    {
        Port = port;
        Dir = dir;
        _ownsDir = ownsDir;
        _config = config;
    }

    public int Port { get; }

    public string Dir { get; }

    /// <summary>A StackExchange.Redis configuration string for this server.</summary>
    public string Config => $"127.0.0.1:{Port}";

    /// <summary>A redis:// URL for this server.</summary>
    public string Url => $"redis://127.0.0.1:{Port}";

    /// <summary>
    /// Starts a server in <paramref name="dir"/> (a temporary one, removed on dispose, when null). <paramref name="aof"/>
    /// false turns persistence off; <paramref name="config"/> adds settings (later ones win over the defaults).
    /// </summary>
    public static async Task<RedisProcess> StartAsync(string? dir = null, bool aof = true, params string[] config)
    {
        var owns = dir is null;
        dir ??= Directory.CreateTempSubdirectory("redflow-redis-").FullName;
        Directory.CreateDirectory(dir);
        string[] persistence = aof ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"];
        var server = new RedisProcess(FreePort(), dir, owns, [.. persistence, .. config]);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>Starts (again) on the same port and directory and waits until it answers PING.</summary>
    public async Task StartAgainAsync()
    {
        var info = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--enable-debug-command", "local", "--dir", Dir,
                     "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no" }.Concat(_config))
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

    /// <summary><c>CLIENT PAUSE</c>: every client's commands wait for <paramref name="duration"/>.</summary>
    public Task PauseAsync(TimeSpan duration) => CliAsync("CLIENT", "PAUSE", ((long)duration.TotalMilliseconds).ToString());

    private async Task WaitExitAsync()
    {
        if (_process is null) return;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(cts.Token);
        _process.Dispose();
        _process = null;
    }

    /// <summary>Runs redis-cli against this server (admin commands of a fault injector), returns its output.</summary>
    public async Task<string> CliAsync(params string[] args)
    {
        var info = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
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
        if (_ownsDir)
        {
            try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
        }
    }

    internal static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}

/// <summary>
/// A Redflow.FaultWorker process, the one worker process of the kill and fault tests: started (it prints
/// "ready &lt;node&gt;"), killed (SIGKILL), paused (SIGSTOP) and resumed (SIGCONT). Keeps what it prints: memory samples
/// ("mem heap ws") in <see cref="Memory"/>, every other line in <see cref="Output"/>.
/// </summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<(DateTimeOffset At, long Heap, long WorkingSet)> _memory = [];
    private readonly List<string> _output = [];

    private WorkerProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    public string Node { get; private set; } = "";

    public bool Killed { get; private set; }

    public bool Paused { get; private set; }

    public IReadOnlyList<(DateTimeOffset At, long Heap, long WorkingSet)> Memory
    {
        get { lock (_memory) return [.. _memory]; }
    }

    /// <summary>What the worker printed after "ready" (stdout and stderr), memory samples left out.</summary>
    public IReadOnlyList<string> Output
    {
        get { lock (_output) return [.. _output]; }
    }

    /// <summary>
    /// Starts a worker on Redis <paramref name="config"/> (a StackExchange.Redis configuration string) with the fault
    /// worker's workflows. <paramref name="environment"/>: REDFLOW_TEST_LOG=1 makes it log to stdout;
    /// REDFLOW_HOLD_STEPS=1 makes its steps marked "hold" wait until it is killed.
    /// </summary>
    public static async Task<WorkerProcess> StartAsync(string config, string prefix, string ledger, TimeSpan lease, int concurrency,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) info.Environment[k] = v;
        foreach (var arg in new[] { DllPath(), config, prefix, ledger, ((int)lease.TotalMilliseconds).ToString(), concurrency.ToString() })
            info.ArgumentList.Add(arg);
        var process = Process.Start(info)!;
        var worker = new WorkerProcess(process);
        _ = worker.DrainAsync(process.StandardError);
        var ready = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
                if (line.StartsWith("ready ", StringComparison.Ordinal)) return line[6..];
            return null;
        });
        worker.Node = await ready.WaitAsync(TimeSpan.FromSeconds(90))
            ?? throw new InvalidOperationException($"The worker exited before it was ready: {string.Join("\n", worker.Output)}");
        _ = worker.DrainAsync(process.StandardOutput);
        return worker;
    }

    private async Task DrainAsync(StreamReader reader)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Split(' ') is ["mem", var heap, var ws])
                lock (_memory) _memory.Add((DateTimeOffset.UtcNow, long.Parse(heap), long.Parse(ws)));
            else
                lock (_output) _output.Add(line);
        }
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

    /// <summary>The worker's dll, built beside the test assembly (tests/&lt;project&gt;/bin/&lt;configuration&gt;/&lt;tfm&gt;/).</summary>
    private static string DllPath()
    {
        var testBin = AppContext.BaseDirectory;
        var tfm = new DirectoryInfo(testBin).Name;
        var configuration = new DirectoryInfo(testBin).Parent!.Name;
        var path = Path.GetFullPath(Path.Combine(testBin, "..", "..", "..", "..", "Redflow.FaultWorker", "bin", configuration, tfm, "Redflow.FaultWorker.dll"));
        return File.Exists(path) ? path : throw new FileNotFoundException("Build tests/Redflow.FaultWorker first.", path);
    }
}
