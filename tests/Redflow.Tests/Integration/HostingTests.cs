using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Redflow.Tests.Integration;

public interface IGreeter
{
    string Greet(string name);
}

public sealed class Greeter : IGreeter
{
    public string Greet(string name) => $"hello {name}";
}

/// <summary>A class-style workflow whose dependency comes from the host's services.</summary>
[Workflow("greet", MaxConcurrency = 5)]
public sealed class GreetWorkflow(IGreeter greeter) : IWorkflow<Signup, string>
{
    public Task<string> RunAsync(WorkflowHandlerContext<Signup> ctx) =>
        ctx.Step.RunAsync("greet", ct => Task.FromResult(greeter.Greet(ctx.Input.UserId)));
}

/// <summary>The runtime registered in a generic host with Akka.Hosting, and the client actor.</summary>
public sealed class HostingTests : WorkerTest
{
    [Fact]
    public async Task A_hosted_worker_runs_class_style_workflows_with_injected_services_and_the_client_actor_emits()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton<IGreeter, Greeter>();
        builder.Services.AddAkka("billing", (akka, sp) => akka
            .WithRedflowWorker(new StartWorkerOptions
            {
                App = "hosted",
                Url = TestEnv.Url,
                Prefix = Prefix,
                Workflows = [Workflows.FromType<GreetWorkflow>()],
                BlmoveTimeout = TimeSpan.FromMilliseconds(200),
                ShutdownTimeout = TimeSpan.FromMilliseconds(500),
            })
            .WithRedflowClient(new RedflowClientOptions { Url = TestEnv.Url, Prefix = Prefix }));
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var registry = host.Services.GetRequiredService<ActorRegistry>();
            var clientActor = await registry.GetAsync<RedflowClientActor>();
            Assert.NotNull(await registry.GetAsync<RedflowWorkerActor>());

            var emitted = await clientActor.Ask<WorkflowEmitted>(new EmitWorkflow("greet", new Signup("ada")), Generous);
            Assert.Equal("hello ada", await Client.GetHandle(emitted.RunId).ResultAsync<string>(Generous));

            var fetched = await clientActor.Ask<RunRetrieved>(new GetRun(emitted.RunId), Generous);
            Assert.Equal(RunStatus.Succeeded, fetched.Run!.Status);
            var cancel = await clientActor.Ask<RunCancelRecorded>(new CancelRun(emitted.RunId), Generous);
            Assert.False(cancel.Recorded); // finished runs cannot be canceled
            Assert.False((await clientActor.Ask<RunSignaled>(new SignalRun(emitted.RunId, "go", 1), Generous)).Delivered); // finished
            var sent = await clientActor.Ask<EventSent>(new SendEvent("greeted", new { who = "ada" }, new SendEventOptions { Key = "ada" }), Generous);
            Assert.StartsWith("evt_", sent.EventId);

            // The client actor answers Status.Failure; Ask turns it back into the exception.
            await Assert.ThrowsAsync<UnknownWorkflowException>(() => clientActor.Ask<WorkflowEmitted>(new EmitWorkflow("missing", null), Generous));
            Assert.Contains("hosted", (await Client.GetWorkflowMetaAsync("greet"))!.Workers.Select(w => w.App));
        }
        finally
        {
            await host.StopAsync();
        }
    }
}
