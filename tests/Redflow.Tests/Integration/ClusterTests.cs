using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Redflow.Runtime;

namespace Redflow.Tests.Integration;

/// <summary>
/// Three Akka.Cluster nodes in this process on loopback, each running the Redflow runtime: the reaper and the cron
/// actor run as cluster singletons; when the oldest node crashes they move, and cron keeps firing once per tick.
/// </summary>
public sealed class ClusterTests : WorkerTest
{
    /// <summary>
    /// The failure detection and downing the samples document: heartbeats every 500 ms, 2 s of pause tolerated,
    /// the split-brain resolver keeps the majority once the membership is stable for 2 s.
    /// </summary>
    internal static Config NodeConfig(int port, int seedPort) => ConfigurationFactory.ParseString($$"""
        akka {
          loglevel = WARNING
          stdout-loglevel = WARNING
          log-dead-letters = off
          actor.provider = cluster
          remote.dot-netty.tcp { hostname = 127.0.0.1, port = {{port}} }
          cluster {
            seed-nodes = ["akka.tcp://redflow-cluster@127.0.0.1:{{seedPort}}"]
            downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
            split-brain-resolver { active-strategy = keep-majority, stable-after = 2s }
            failure-detector { heartbeat-interval = 500ms, acceptable-heartbeat-pause = 2s }
            singleton.hand-over-retry-interval = 500ms
          }
          coordinated-shutdown.run-by-clr-shutdown-hook = off
        }
        """);

    [Fact]
    public async Task Crashing_the_oldest_node_moves_the_singletons_and_cron_keeps_firing_once_per_tick()
    {
        var ticking = Workflows.Define("cluster-tick", async ctx => null,
            new WorkflowOptions { MaxConcurrency = 10, Cron = [new CronTrigger("* * * * * *") { Id = "cluster-tick" }] });
        var work = Workflows.Define<Signup, string>("cluster-work", async ctx => ctx.Input.UserId, new WorkflowOptions { MaxConcurrency = 10 });
        var ports = Enumerable.Range(0, 3).Select(_ => FreePort()).ToArray();
        var systems = new List<ActorSystem>();
        var runtimes = new List<RedflowRuntime>();
        try
        {
            foreach (var port in ports)
            {
                var system = ActorSystem.Create("redflow-cluster", NodeConfig(port, ports[0]));
                systems.Add(system);
                await EventuallyAsync(() => Task.FromResult(Cluster.Get(system).SelfMember.Status == MemberStatus.Up), $"node {port} is up");
            }
            foreach (var system in systems)
                runtimes.Add(await RedflowRuntime.StartAsync(system, new StartWorkerOptions
                {
                    Url = TestEnv.Url, Prefix = Prefix, Workflows = [ticking, work], Lease = TimeSpan.FromSeconds(2),
                    ReaperInterval = TimeSpan.FromMilliseconds(200), BlmoveTimeout = TimeSpan.FromMilliseconds(200),
                    ShutdownTimeout = TimeSpan.FromMilliseconds(500),
                }, CancellationToken.None));
            await EventuallyAsync(async () => (await Client.ListRunsAsync(new ListRunsParams { Workflow = "cluster-tick" })).Count >= 2, "cron fires");

            // Crash the oldest node (it hosts the singletons): its actor system dies without leaving the cluster.
            var crashedAt = DateTimeOffset.UtcNow;
            await systems[0].Terminate();
            await EventuallyAsync(async () => (await Client.ListRunsAsync(new ListRunsParams { Workflow = "cluster-tick" }))
                .Any(r => r.CreatedAt > crashedAt + TimeSpan.FromSeconds(2)), "cron fires again after the hand-over", TimeSpan.FromSeconds(60));

            var handle = await Client.EmitWorkflowAsync(work, new Signup("after-crash"));
            Assert.Equal("after-crash", await handle.ResultAsync(Generous));

            var runs = await Client.ListRunsAsync(new ListRunsParams { Workflow = "cluster-tick", Limit = 1000 });
            Assert.Equal(runs.Count, runs.Select(r => r.IdempotencyKey).Distinct().Count()); // once per tick, across the hand-over
        }
        finally
        {
            foreach (var runtime in runtimes.Skip(1)) await runtime.StopAsync();
            foreach (var system in systems) await system.Terminate();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
