using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Redflow.TestProcesses;

namespace Redflow.Tests.Integration;

/// <summary>AddRedflowHealthChecks: Redis reachable, pollers alive, lease renewal on time, on real Redis servers (one of them stopped and started again).</summary>
public sealed class HealthCheckTests : WorkerTest
{
    private static async Task<Dictionary<string, HealthReportEntry>> CheckAsync(IServiceProvider services) =>
        (await services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Tags.Contains("redflow"))).Entries.ToDictionary(e => e.Key, e => e.Value);

    private static async Task<Dictionary<string, HealthReportEntry>> EventuallyStatusAsync(IServiceProvider services, string check, HealthStatus status)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var entries = await CheckAsync(services);
            if (entries[check].Status == status) return entries;
            if (DateTime.UtcNow > until) throw new Xunit.Sdk.XunitException($"{check} stayed {entries[check].Status} ({entries[check].Description}), expected {status}.");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_worker_is_healthy_then_unhealthy_while_its_Redis_is_down_holding_a_lease_and_healthy_again_when_Redis_is_back()
    {
        await using var redis = await RedisProcess.StartAsync(aof: false);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = Workflows.Define("health-held", async ctx =>
        {
            await ctx.Step.RunAsync("hold", async ct =>
            {
                started.TrySetResult();
                await release.Task.WaitAsync(ct);
            });
            return null;
        });
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddHealthChecks().AddRedflowHealthChecks(new RedflowHealthCheckOptions { PollerStaleAfter = TimeSpan.FromSeconds(2), PingTimeout = TimeSpan.FromMilliseconds(500) });
        builder.Services.AddAkka("health", (akka, sp) => akka.WithRedflowWorker(new StartWorkerOptions
        {
            App = "health", Url = redis.Url, Prefix = Prefix, Workflows = [held],
            Lease = TimeSpan.FromSeconds(1.5), BlmoveTimeout = TimeSpan.FromMilliseconds(200), ShutdownTimeout = TimeSpan.FromMilliseconds(500),
        }));
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var healthy = await EventuallyStatusAsync(host.Services, RedflowHealthChecks.Redis, HealthStatus.Healthy);
            Assert.All([RedflowHealthChecks.Redis, RedflowHealthChecks.Pollers, RedflowHealthChecks.Leases], c => Assert.Equal(HealthStatus.Healthy, healthy[c].Status));

            await using (var client = RedflowClient.Create(new RedflowClientOptions { Url = redis.Url, Prefix = Prefix }))
                await client.EmitWorkflowAsync("health-held", null);
            await started.Task.WaitAsync(Generous);

            await redis.ShutdownAsync();
            var down = await EventuallyStatusAsync(host.Services, RedflowHealthChecks.Redis, HealthStatus.Unhealthy);
            Assert.Contains("PING failed", down[RedflowHealthChecks.Redis].Description);
            await EventuallyStatusAsync(host.Services, RedflowHealthChecks.Pollers, HealthStatus.Unhealthy);
            var leases = await EventuallyStatusAsync(host.Services, RedflowHealthChecks.Leases, HealthStatus.Unhealthy);
            Assert.Contains("no lease renewal", leases[RedflowHealthChecks.Leases].Description);

            await redis.StartAgainAsync();
            await EventuallyStatusAsync(host.Services, RedflowHealthChecks.Redis, HealthStatus.Healthy);
            await EventuallyStatusAsync(host.Services, RedflowHealthChecks.Pollers, HealthStatus.Healthy);
            await EventuallyStatusAsync(host.Services, RedflowHealthChecks.Leases, HealthStatus.Healthy);
        }
        finally
        {
            release.TrySetResult();
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task A_busy_worker_whose_slots_are_all_taken_keeps_its_pollers_healthy()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = 0;
        var held = Workflows.Define("health-busy", async ctx =>
        {
            await ctx.Step.RunAsync("hold", async ct => { Interlocked.Increment(ref running); await release.Task.WaitAsync(ct); });
            return null;
        }, new WorkflowOptions { MaxConcurrency = 2 });
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddHealthChecks().AddRedflowHealthChecks(new RedflowHealthCheckOptions { PollerStaleAfter = TimeSpan.FromSeconds(1) });
        builder.Services.AddAkka("health-busy", (akka, sp) => akka.WithRedflowWorker(new StartWorkerOptions
        {
            Url = TestEnv.Url, Prefix = Prefix, Workflows = [held], Concurrency = 2,
            BlmoveTimeout = TimeSpan.FromMilliseconds(200), ShutdownTimeout = TimeSpan.FromMilliseconds(500),
        }));
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            await Client.EmitWorkflowAsync("health-busy", null);
            await Client.EmitWorkflowAsync("health-busy", null);
            await EventuallyAsync(() => Task.FromResult(Volatile.Read(ref running) == 2), "both runs hold a slot");
            await Task.Delay(TimeSpan.FromSeconds(2)); // longer than PollerStaleAfter with no claim to make
            Assert.Equal(HealthStatus.Healthy, (await CheckAsync(host.Services))[RedflowHealthChecks.Pollers].Status);
        }
        finally
        {
            release.TrySetResult();
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task A_client_only_app_checks_Redis_through_its_client()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddRedflowClient(new RedflowClientOptions { Url = TestEnv.Url, Prefix = Prefix });
        services.AddHealthChecks().AddRedflowHealthChecks();
        await using (var provider = services.BuildServiceProvider())
        {
            var entries = await CheckAsync(provider);
            Assert.Equal(HealthStatus.Healthy, entries[RedflowHealthChecks.Redis].Status);
            Assert.Equal(HealthStatus.Healthy, entries[RedflowHealthChecks.Pollers].Status); // no worker: nothing to check
            Assert.Equal(HealthStatus.Healthy, entries[RedflowHealthChecks.Leases].Status);
        }

        var nowhere = new ServiceCollection().AddLogging();
        nowhere.AddRedflowClient($"redis://127.0.0.1:{RedisProcess.FreePort()}");
        nowhere.AddHealthChecks().AddRedflowHealthChecks(new RedflowHealthCheckOptions { PingTimeout = TimeSpan.FromMilliseconds(500) });
        await using (var provider = nowhere.BuildServiceProvider())
            Assert.Equal(HealthStatus.Unhealthy, (await CheckAsync(provider))[RedflowHealthChecks.Redis].Status);

        var none = new ServiceCollection().AddLogging();
        none.AddHealthChecks().AddRedflowHealthChecks(new RedflowHealthCheckOptions { FailureStatus = HealthStatus.Degraded });
        await using (var provider = none.BuildServiceProvider())
        {
            var entry = (await CheckAsync(provider))[RedflowHealthChecks.Redis];
            Assert.Equal(HealthStatus.Degraded, entry.Status);
            Assert.Contains("No Redflow worker or client", entry.Description);
        }
    }
}
