using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Redflow.ClusterTests.Fixtures;

/// <summary>
/// A throwaway Redis Cluster on loopback: three primaries and three replicas of <c>redis-server</c> (from apt), each a
/// child process with its own directory (AOF on, RDB off), joined with <c>redis-cli --cluster create</c>. Every node
/// is killed (by its process id) and its directory deleted when the cluster is disposed or the test process exits.
/// Admin commands go through <c>redis-cli</c>, so the fixture does not depend on the engine's connection code.
/// </summary>
public sealed class RedisCluster : IAsyncDisposable
{
    private readonly string _dir;
    private readonly Dictionary<int, Process> _processes = [];
    private int _disposed;

    private RedisCluster(string dir, IReadOnlyList<int> ports)
    {
        _dir = dir;
        Ports = ports;
    }

    /// <summary>The ports of the six nodes (cluster bus on port + 10000).</summary>
    public IReadOnlyList<int> Ports { get; }

    /// <summary>A StackExchange.Redis configuration string naming every node (what a Redflow URL can be).</summary>
    public string ConfigurationString => string.Join(",", Ports.Select(p => $"127.0.0.1:{p}"));

    /// <summary>Starts six nodes and creates the cluster; returns once every node reports <c>cluster_state:ok</c>.</summary>
    public static async Task<RedisCluster> StartAsync(TimeSpan? nodeTimeout = null)
    {
        var ports = FreePorts(6);
        var cluster = new RedisCluster(Directory.CreateTempSubdirectory("redflow-cluster-").FullName, ports);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.KillAll();
        try
        {
            foreach (var port in ports) cluster.StartNode(port, nodeTimeout ?? TimeSpan.FromSeconds(2));
            foreach (var port in ports) await cluster.WaitForPingAsync(port);
            var create = await Cli(ports[0], ["--cluster", "create", .. ports.Select(p => $"127.0.0.1:{p}"), "--cluster-replicas", "1", "--cluster-yes"]);
            if (!create.Contains("All 16384 slots covered", StringComparison.Ordinal))
                throw new InvalidOperationException("redis-cli --cluster create failed:\n" + create);
            await cluster.WaitHealthyAsync(TimeSpan.FromSeconds(30));
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private void StartNode(int port, TimeSpan nodeTimeout)
    {
        var dir = Path.Combine(_dir, port.ToString());
        Directory.CreateDirectory(dir);
        Process process;
        try
        {
            process = Process.Start(new ProcessStartInfo("redis-server",
            [
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", ((long)nodeTimeout.TotalMilliseconds).ToString(),
                "--port", port.ToString(), "--bind", "127.0.0.1", "--dir", dir,
                "--save", "", "--appendonly", "yes", "--maxmemory-policy", "noeviction",
                "--repl-diskless-sync-delay", "0", // a new replica syncs at once, not after the default 5 s
            ])
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            })!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("redis-server is not installed (apt-get install redis-server); the cluster tests need it.", ex);
        }
        _ = process.StandardOutput.ReadToEndAsync();
        lock (_processes) _processes[port] = process;
    }

    /// <summary>Kills a node with SIGKILL (a crash: no AOF flush beyond what the kernel has).</summary>
    public void Kill(int port)
    {
        Process? process;
        lock (_processes) _processes.Remove(port, out process);
        if (process is null) return;
        try { process.Kill(); } catch (InvalidOperationException) { }
        process.WaitForExit(5000);
        process.Dispose();
    }

    /// <summary>Sends a signal to a node's process by its id: <c>STOP</c> freezes it (its replication falls behind), <c>CONT</c> resumes it.</summary>
    public void Signal(int port, string signal)
    {
        Process process;
        lock (_processes) process = _processes[port];
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + signal, process.Id.ToString()]) { UseShellExecute = false })!;
        kill.WaitForExit(5000);
    }

    /// <summary>Restarts a killed node from its directory (its nodes.conf and AOF): it rejoins, as a replica if it lost its slots.</summary>
    public async Task RestartAsync(int port)
    {
        StartNode(port, TimeSpan.FromSeconds(2));
        await WaitForPingAsync(port);
    }

    /// <summary>The hash slot of a Redflow prefix (its keys all carry the tag <c>{prefix}</c>).</summary>
    public async Task<int> SlotOfAsync(string prefix) =>
        int.Parse((await Cli(LivePort(), "cluster", "keyslot", "{" + prefix + "}:")).Trim());

    /// <summary>The port of the primary serving <paramref name="slot"/>, and the ports of its replicas, as a live node sees them.</summary>
    public async Task<(int Primary, IReadOnlyList<int> Replicas)> OwnerOfSlotAsync(int slot)
    {
        var nodes = await NodesAsync();
        var primary = nodes.Single(n => n.IsPrimary && !n.Failed && n.Slots.Any(r => slot >= r.From && slot <= r.To));
        return (primary.Port, nodes.Where(n => n.PrimaryId == primary.Id && !n.Failed).Select(n => n.Port).ToList());
    }

    /// <summary>The primary and replicas serving a prefix.</summary>
    public async Task<(int Primary, IReadOnlyList<int> Replicas)> OwnerOfAsync(string prefix) => await OwnerOfSlotAsync(await SlotOfAsync(prefix));

    /// <summary>
    /// A manual failover: <c>CLUSTER FAILOVER</c> on a replica (it waits for the replica to catch up with its primary,
    /// then swaps roles, so nothing acknowledged is lost). Returns once the replica reports itself primary.
    /// </summary>
    public async Task FailoverAsync(int replicaPort, string mode = "")
    {
        var answer = mode == "" ? await Cli(replicaPort, "cluster", "failover") : await Cli(replicaPort, "cluster", "failover", mode);
        if (!answer.Contains("OK", StringComparison.Ordinal)) throw new InvalidOperationException($"CLUSTER FAILOVER on {replicaPort}: {answer}");
        await WaitUntilAsync(async () => (await Cli(replicaPort, "role")).StartsWith("master", StringComparison.Ordinal),
            $"node {replicaPort} became primary", TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// Waits until every live node reports <c>cluster_state:ok</c>, all agree on the slots, three primaries serve them,
    /// and every primary has a replica whose replication link is online (a fresh replica needs a full sync first:
    /// until then <c>WAIT</c> counts it out and a failover to it would lose everything).
    /// </summary>
    public Task WaitHealthyAsync(TimeSpan timeout) => WaitUntilAsync(async () =>
    {
        foreach (var port in LivePorts())
        {
            var info = await Cli(port, "cluster", "info");
            if (!info.Contains("cluster_state:ok", StringComparison.Ordinal)) return false;
        }
        var nodes = await NodesAsync();
        var primaries = nodes.Where(n => n.IsPrimary && !n.Failed && n.Slots.Count > 0).ToList();
        if (primaries.Count != 3) return false;
        foreach (var primary in primaries)
        {
            if (!nodes.Any(n => n.PrimaryId == primary.Id && !n.Failed)) return false;
            var replication = await Cli(primary.Port, "info", "replication");
            if (!replication.Contains("connected_slaves:1", StringComparison.Ordinal) || !replication.Contains("state=online", StringComparison.Ordinal)) return false;
        }
        var check = await Cli(LivePort(), "--cluster", "check", $"127.0.0.1:{LivePort()}");
        return check.Contains("All nodes agree about slots configuration", StringComparison.Ordinal)
            && check.Contains("All 16384 slots covered", StringComparison.Ordinal)
            && !check.Contains("[ERR]", StringComparison.Ordinal);
    }, "the cluster is healthy", timeout);

    /// <summary>Runs <c>redis-cli -p port args</c> and returns what it printed (stdout and stderr).</summary>
    public static async Task<string> Cli(int port, params string[] args)
    {
        var info = new ProcessStartInfo("redis-cli", ["-h", "127.0.0.1", "-p", port.ToString(), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return await stdout + await stderr;
    }

    internal sealed record Node(string Id, int Port, bool IsPrimary, bool Failed, string? PrimaryId, IReadOnlyList<(int From, int To)> Slots);

    /// <summary>CLUSTER NODES as a live node sees it.</summary>
    internal async Task<IReadOnlyList<Node>> NodesAsync()
    {
        var text = await Cli(LivePort(), "cluster", "nodes");
        var nodes = new List<Node>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var f = line.Split(' ');
            if (f.Length < 8) continue;
            var port = int.Parse(f[1].Split('@')[0].Split(':')[1]);
            var flags = f[2].Split(',');
            var slots = f.Skip(8).Where(s => !s.StartsWith('[')).Select(s =>
            {
                var parts = s.Split('-');
                return (int.Parse(parts[0]), int.Parse(parts[^1]));
            }).ToList();
            nodes.Add(new Node(f[0], port, flags.Contains("master"), flags.Contains("fail") || flags.Contains("fail?"),
                f[3] == "-" ? null : f[3], slots));
        }
        return nodes;
    }

    private IEnumerable<int> LivePorts()
    {
        lock (_processes) return _processes.Where(p => !p.Value.HasExited).Select(p => p.Key).Order().ToList();
    }

    private int LivePort() => LivePorts().First();

    private async Task WaitForPingAsync(int port) =>
        await WaitUntilAsync(async () => (await Cli(port, "ping")).Contains("PONG", StringComparison.Ordinal), $"node {port} answers PING", TimeSpan.FromSeconds(30));

    internal static async Task WaitUntilAsync(Func<Task<bool>> condition, string because, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > until) throw new TimeoutException($"Timed out waiting until {because}.");
            await Task.Delay(100);
        }
    }

    /// <summary>Ports p such that p and p + 10000 (the cluster bus) are free.</summary>
    private static List<int> FreePorts(int count)
    {
        var ports = new List<int>();
        var random = new Random();
        while (ports.Count < count)
        {
            var port = random.Next(20000, 30000);
            if (!ports.Contains(port) && IsFree(port) && IsFree(port + 10000)) ports.Add(port);
        }
        return ports;
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private void KillAll()
    {
        foreach (var port in _processes.Keys.ToList()) Kill(port);
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return ValueTask.CompletedTask;
        KillAll();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        return ValueTask.CompletedTask;
    }
}

/// <summary>The cluster shared by the compatibility tests of this assembly (tests keep apart by prefix): started once, on first use.</summary>
internal static class SharedCluster
{
    private static readonly Lazy<RedisCluster> Lazy = new(() => RedisCluster.StartAsync().GetAwaiter().GetResult(), LazyThreadSafetyMode.ExecutionAndPublication);

    public static RedisCluster Instance => Lazy.Value;
}
