using Akka.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Redflow.Tests.Integration;

/// <summary>AddRedflowClient and options bound from configuration ("Redflow" section), on the shared Redis.</summary>
public sealed class DependencyInjectionTests : WorkerTest
{
    private static readonly WorkflowDefinition<Signup, string> Greet = Workflows.Define<Signup, string>("di-greet", async ctx =>
    {
        var name = await ctx.Step.RunAsync("name", ct => Task.FromResult(ctx.Input.UserId));
        return await ctx.Step.RunAsync("greet", ct => Task.FromResult($"hello {name}"));
    });

    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    [Fact]
    public async Task AddRedflowClient_binds_its_options_from_configuration_and_the_client_from_DI_emits_and_inspects()
    {
        var config = Config(("Redflow:Url", TestEnv.Url), ("Redflow:Prefix", Prefix), ("Redflow:IdempotencyWindow", "01:00:00"),
            ("Redflow:App", "ignored-by-the-client"));
        var services = new ServiceCollection().AddRedflowClient(config.GetSection("Redflow"));
        await using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<RedflowClientOptions>();
        Assert.Equal(TimeSpan.FromHours(1), options.IdempotencyWindow);
        Assert.Equal(Prefix, options.Prefix);
        var client = provider.GetRequiredService<IRedflowClient>();
        Assert.Same(client, provider.GetRequiredService<IRedflowClient>());

        await StartWorkerAsync(Greet);
        var handle = await client.EmitWorkflowAsync(Greet, new Signup("ada"));
        Assert.Equal("hello ada", await handle.ResultAsync(Generous));
        Assert.Equal(["name", "greet"], (await client.GetRunStepsAsync(handle.RunId)).Select(s => s.Name));
    }

    [Fact]
    public void AddRedflowClient_checks_the_options_when_it_registers_them()
    {
        Assert.Throws<ArgumentException>(() => new ServiceCollection().AddRedflowClient(Config(("Redflow:Url", "redis://host:notaport")).GetSection("Redflow")));
        Assert.ThrowsAny<ArgumentException>(() => new ServiceCollection().AddRedflowClient(new RedflowClientOptions { Prefix = "a{b" }));
        var tooSmall = Assert.Throws<ArgumentOutOfRangeException>(() => new ServiceCollection().AddRedflowClient(Config(("Redflow:MaxPayloadBytes", "0")).GetSection("Redflow")));
        Assert.Contains("MaxPayloadBytes", tooSmall.Message);
        Assert.Throws<InvalidOperationException>(() => new ServiceCollection().AddRedflowClient(Config(("Redflow:IdempotencyWindow", "soon")).GetSection("Redflow")));
        // A missing section keeps every default.
        var provider = new ServiceCollection().AddRedflowClient(Config().GetSection("Redflow")).BuildServiceProvider();
        Assert.Equal(new RedflowClientOptions(), provider.GetRequiredService<RedflowClientOptions>());
    }

    [Fact]
    public void StartWorkerOptions_bind_from_configuration_with_lists_and_durations()
    {
        var options = RedflowConfiguration.Bind<StartWorkerOptions>(Config(("App", "billing"), ("Url", "redis://r:6380"), ("Concurrency", "3"),
            ("Lease", "00:00:05"), ("Queues:0", "critical"), ("Queues:1", "io"), ("RunReaperAndCron", "false"), ("IdempotencyWindow", "01:00:00")));
        Assert.Equal("billing", options.App);
        Assert.Equal("redis://r:6380", options.Url);
        Assert.Equal(3, options.Concurrency);
        Assert.Equal(TimeSpan.FromSeconds(5), options.Lease);
        Assert.Equal(["critical", "io"], options.Queues!);
        Assert.False(options.RunReaperAndCron);
        Assert.Empty(options.Workflows);
        Assert.Null(options.Configuration);
    }

    [Fact]
    public async Task A_host_runs_a_worker_whose_options_come_from_the_Redflow_section_and_a_client_from_the_same_section()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Redflow:App"] = "configured-worker",
            ["Redflow:Url"] = TestEnv.Url,
            ["Redflow:Prefix"] = Prefix,
            ["Redflow:Concurrency"] = "3",
            ["Redflow:BlmoveTimeout"] = "00:00:00.200",
            ["Redflow:ShutdownTimeout"] = "00:00:00.500",
        });
        builder.Services.AddRedflowClient(builder.Configuration.GetSection("Redflow"));
        builder.Services.AddAkka("di", (akka, sp) => akka
            .WithRedflowWorker(builder.Configuration.GetSection("Redflow"), o => o with { Workflows = [Greet] }));
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var client = host.Services.GetRequiredService<IRedflowClient>();
            var handle = await client.EmitWorkflowAsync(Greet, new Signup("grace"));
            Assert.Equal("hello grace", await handle.ResultAsync(Generous));
            var worker = Assert.Single((await client.GetStatsAsync()).Workers);
            Assert.Equal("configured-worker", worker.App);
            Assert.Equal(3, worker.Concurrency);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task A_bad_worker_option_from_configuration_fails_the_host_start_naming_it()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Redflow:Url"] = TestEnv.Url,
            ["Redflow:Prefix"] = Prefix,
            ["Redflow:Concurrency"] = "0",
        });
        builder.Services.AddAkka("di-bad", (akka, sp) => akka
            .WithRedflowWorker(builder.Configuration.GetSection("Redflow"), o => o with { Workflows = [Greet] }));
        using var host = builder.Build();
        var error = await Record.ExceptionAsync(() => host.StartAsync());
        try { await host.StopAsync(); } catch (Exception) { }
        Assert.NotNull(error);
        var inner = error is AggregateException a ? a.Flatten().InnerExceptions.First() : error;
        while (inner is not ArgumentOutOfRangeException && inner.InnerException is not null) inner = inner.InnerException;
        var bad = Assert.IsType<ArgumentOutOfRangeException>(inner);
        Assert.Equal("Concurrency", bad.ParamName);
    }
}
