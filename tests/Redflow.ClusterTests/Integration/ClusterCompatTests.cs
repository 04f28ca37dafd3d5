using Redflow.ClusterTests.Fixtures;
using StackExchange.Redis;

namespace Redflow.Tests.Integration;

/// <summary>
/// What only a cluster can show: a <see cref="ConfigurationOptions"/> object instead of a URL, namespaces on different
/// primaries in one process, keys of a prefix all on its slot's primary, the start checks reading every node, and
/// the opt-in replica wait. The single-server behaviours (emit, steps, retries, idempotency, delay, cancel, children,
/// cron) run on the cluster through the linked CoreTests, ControlTests and CronTests.
/// </summary>
public sealed class ClusterCompatTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    private static WorkflowDefinition Steps() => Workflows.Define("two-steps", async ctx =>
    {
        var a = await ctx.Step.RunAsync("a", ct => Task.FromResult(1));
        var b = await ctx.Step.RunAsync("b", ct => Task.FromResult(a + 1));
        return new { sum = a + b };
    }, new WorkflowOptions { MaxConcurrency = 10 });

    private static StartWorkerOptions Fast(StartWorkerOptions o) => o with
    {
        Lease = TimeSpan.FromSeconds(2), ReaperInterval = TimeSpan.FromMilliseconds(200),
        BlmoveTimeout = TimeSpan.FromMilliseconds(200), ShutdownTimeout = TimeSpan.FromMilliseconds(500),
    };

    private static ConfigurationOptions ClusterConfiguration()
    {
        var configuration = new ConfigurationOptions();
        foreach (var port in SharedCluster.Instance.Ports) configuration.EndPoints.Add("127.0.0.1", port);
        return configuration;
    }

    [Fact]
    public async Task A_ConfigurationOptions_object_connects_client_and_worker_and_is_not_changed()
    {
        var prefix = TestEnv.NewPrefix();
        var configuration = ClusterConfiguration();
        await using var worker = await RedflowWorker.StartAsync(Fast(new StartWorkerOptions
        {
            Url = "redis://nowhere.invalid:1", Configuration = configuration, Prefix = prefix, Workflows = [Steps()],
        }));
        await using var client = RedflowClient.Create(new RedflowClientOptions { Url = "redis://nowhere.invalid:1", Configuration = configuration, Prefix = prefix });
        var output = await (await client.EmitWorkflowAsync("two-steps", null)).ResultAsync(Generous);
        Assert.Equal(3, output.GetProperty("sum").GetInt32());
        Assert.False(configuration.AllowAdmin);
        Assert.True(configuration.AbortOnConnectFail);
        Assert.Null(configuration.ClientName);
        await worker.StopAsync();
    }

    [Fact]
    public async Task Namespaces_on_three_different_primaries_run_side_by_side_and_each_keeps_its_keys_on_its_slot_owner()
    {
        var cluster = SharedCluster.Instance;
        // One prefix per primary.
        var byOwner = new Dictionary<int, string>();
        while (byOwner.Count < 3)
        {
            var prefix = TestEnv.NewPrefix();
            byOwner.TryAdd((await cluster.OwnerOfAsync(prefix)).Primary, prefix);
        }
        var workers = new List<RedflowWorker>();
        try
        {
            foreach (var prefix in byOwner.Values)
                workers.Add(await RedflowWorker.StartAsync(Fast(new StartWorkerOptions { Url = TestEnv.Url, Prefix = prefix, Workflows = [Steps()] })));
            var results = await Task.WhenAll(byOwner.Values.Select(async prefix =>
            {
                await using var client = RedflowClient.Create(new RedflowClientOptions { Url = TestEnv.Url, Prefix = prefix });
                var handles = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => client.EmitWorkflowAsync("two-steps", null)));
                var outputs = await Task.WhenAll(handles.Select(h => h.ResultAsync(Generous)));
                return outputs.Count(o => o.GetProperty("sum").GetInt32() == 3);
            }));
            Assert.All(results, n => Assert.Equal(20, n));
            foreach (var (owner, prefix) in byOwner)
            {
                foreach (var port in cluster.Ports)
                {
                    var keys = await RedisCluster.Cli(port, "--scan", "--pattern", "{" + prefix + "}:*");
                    var count = keys.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
                    var role = await RedisCluster.Cli(port, "role");
                    if (port == owner) Assert.True(count > 0, $"the owner {port} of {prefix} holds its keys");
                    else if (role.StartsWith("master", StringComparison.Ordinal)) Assert.True(count == 0, $"primary {port} holds no key of {prefix} (found {count})");
                }
            }
        }
        finally
        {
            foreach (var worker in workers) await worker.StopAsync();
        }
    }

    [Fact]
    public async Task WaitForReplicas_emits_and_runs_on_the_cluster_and_an_unmet_wait_throws_naming_the_replicas()
    {
        var prefix = TestEnv.NewPrefix();
        await using var worker = await RedflowWorker.StartAsync(Fast(new StartWorkerOptions
        {
            Url = TestEnv.Url, Prefix = prefix, Workflows = [Steps()], WaitForReplicas = 1,
        }));
        await using var client = RedflowClient.Create(new RedflowClientOptions { Url = TestEnv.Url, Prefix = prefix, WaitForReplicas = 1 });
        var output = await (await client.EmitWorkflowAsync("two-steps", null, new EmitOptions { IdempotencyKey = "k1" })).ResultAsync(Generous);
        Assert.Equal(3, output.GetProperty("sum").GetInt32());

        // Each primary has one replica: waiting for two cannot succeed. The run is written; the emit says so.
        await using var greedy = RedflowClient.Create(new RedflowClientOptions
        {
            Url = TestEnv.Url, Prefix = prefix, WaitForReplicas = 2, WaitForReplicasTimeout = TimeSpan.FromMilliseconds(200),
        });
        var ex = await Assert.ThrowsAsync<RedflowException>(() => greedy.EmitWorkflowAsync("two-steps", null, new EmitOptions { IdempotencyKey = "k2" }));
        Assert.Contains("1 of 2 replicas", ex.Message);
        Assert.Contains("IdempotencyKey", ex.Message);
        // Emitting again with the key returns the same run, which the worker has run meanwhile.
        var again = await client.EmitWorkflowAsync("two-steps", null, new EmitOptions { IdempotencyKey = "k2" });
        await again.ResultAsync(Generous);
        Assert.Single(await client.ListRunsAsync(new ListRunsParams { Status = RunStatus.Succeeded, Limit = 10 }), r => r.IdempotencyKey == "k2");
        await worker.StopAsync();
    }

    [Fact]
    public void Replica_wait_options_are_validated_naming_the_option()
    {
        var negative = Assert.Throws<ArgumentOutOfRangeException>(() =>
            RedflowClient.Create(new RedflowClientOptions { Url = TestEnv.Url, WaitForReplicas = -1 }));
        Assert.Equal("WaitForReplicas", negative.ParamName);
        var timeout = Assert.Throws<ArgumentOutOfRangeException>(() =>
            RedflowClient.Create(new RedflowClientOptions { Url = TestEnv.Url, WaitForReplicas = 1, WaitForReplicasTimeout = TimeSpan.Zero }));
        Assert.Equal("WaitForReplicasTimeout", timeout.ParamName);
    }

    [Fact]
    public async Task The_start_check_reads_every_node_and_refuses_an_evicting_replica()
    {
        await using var cluster = await RedisCluster.StartAsync();
        var replica = (await cluster.NodesAsync()).First(n => !n.IsPrimary).Port;
        await RedisCluster.Cli(replica, "config", "set", "maxmemory-policy", "allkeys-lru");
        var ex = await Assert.ThrowsAsync<RedflowException>(() => RedflowWorker.StartAsync(Fast(new StartWorkerOptions
        {
            Url = cluster.ConfigurationString, Prefix = TestEnv.NewPrefix(), Workflows = [Steps()],
        })));
        Assert.Contains("allkeys-lru", ex.Message);
        Assert.Contains(replica.ToString(), ex.Message);
    }
}
