using Akka.Actor;
using Akka.DependencyInjection;
using Akka.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Redflow.Runtime;

namespace Redflow;

/// <summary>The key under which the worker's top actor is registered in the <see cref="ActorRegistry"/>.</summary>
public sealed class RedflowWorkerActor
{
    private RedflowWorkerActor() { }
}

/// <summary>Registers Redflow in an Akka.Hosting actor system.</summary>
public static class RedflowHostingExtensions
{
    /// <summary>
    /// Runs a Redflow worker on the host's actor system: queue pollers, lease renewal, and the reaper and cron
    /// actor (cluster singletons when the actor system is an Akka.Cluster, else local). Class-style
    /// workflows are created through the host's services. The worker stops gracefully when the actor system
    /// shuts down (a coordinated-shutdown task in the service-requests-done phase).
    /// </summary>
    public static AkkaConfigurationBuilder WithRedflowWorker(this AkkaConfigurationBuilder builder, StartWorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        builder.AddStartup(async (system, registry) =>
        {
            var services = options.Services ?? TryServices(system);
            var runtime = await RedflowRuntime.StartAsync(system, options with
            {
                Services = services,
                LoggerFactory = options.LoggerFactory ?? services?.GetService(typeof(ILoggerFactory)) as ILoggerFactory,
            }, CancellationToken.None).ConfigureAwait(false);
            registry.Register<RedflowWorkerActor>(runtime.Worker);
            CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseServiceRequestsDone, "redflow-worker-stop", async () =>
            {
                await runtime.StopAsync().ConfigureAwait(false);
                return Akka.Done.Instance;
            });
        });
        return builder;
    }

    /// <summary>
    /// Runs a Redflow worker (as <see cref="WithRedflowWorker(AkkaConfigurationBuilder, StartWorkerOptions)"/>) with its
    /// options bound from a configuration section, for example <c>builder.Configuration.GetSection("Redflow")</c>
    /// (keys named as the properties of <see cref="StartWorkerOptions"/>: <c>App</c>, <c>Url</c>, <c>Prefix</c>,
    /// <c>Queues</c>, <c>Concurrency</c>, <c>Lease</c>, ...; durations as <c>hh:mm:ss</c>). <paramref name="configure"/>
    /// completes them with what configuration cannot carry, the workflows above all:
    /// <c>o =&gt; o with { Workflows = [sendWelcome] }</c>. The options are checked when the actor system starts.
    /// </summary>
    /// <exception cref="InvalidOperationException">A value cannot be converted to its option's type.</exception>
    public static AkkaConfigurationBuilder WithRedflowWorker(this AkkaConfigurationBuilder builder, IConfiguration configuration,
        Func<StartWorkerOptions, StartWorkerOptions>? configure = null)
    {
        var options = RedflowConfiguration.Bind<StartWorkerOptions>(configuration);
        return builder.WithRedflowWorker(configure is null ? options : configure(options));
    }

    /// <summary>Registers the client actor with <see cref="RedflowClientOptions"/> bound from a configuration section (see <see cref="RedflowConfiguration.Bind{T}"/>).</summary>
    /// <exception cref="ArgumentException">An option is invalid (the exception names it).</exception>
    public static AkkaConfigurationBuilder WithRedflowClient(this AkkaConfigurationBuilder builder, IConfiguration configuration) =>
        builder.WithRedflowClient(RedflowConfiguration.Bind<RedflowClientOptions>(configuration));

    /// <summary>Registers the client actor (<see cref="RedflowClientActor"/>) for a Redis URL, under the default prefix.</summary>
    public static AkkaConfigurationBuilder WithRedflowClient(this AkkaConfigurationBuilder builder, string url) =>
        builder.WithRedflowClient(new RedflowClientOptions { Url = url });

    /// <summary>
    /// Registers the client actor in the <see cref="ActorRegistry"/> under <see cref="RedflowClientActor"/>: it answers
    /// <see cref="EmitWorkflow"/>, <see cref="CancelRun"/> and <see cref="GetRun"/>. It is local to each node.
    /// </summary>
    public static AkkaConfigurationBuilder WithRedflowClient(this AkkaConfigurationBuilder builder, RedflowClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var client = RedflowClient.Create(options);
        return builder.WithActors((system, registry) =>
        {
            var actor = system.ActorOf(Props.Create(() => new RedflowClientActor(client)), "redflow-client");
            registry.Register<RedflowClientActor>(actor);
            CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseActorSystemTerminate, "redflow-client-dispose", async () =>
            {
                await client.DisposeAsync().ConfigureAwait(false);
                return Akka.Done.Instance;
            });
        });
    }

    private static IServiceProvider? TryServices(ActorSystem system)
    {
        try { return DependencyResolver.For(system).Resolver.GetService<IServiceProvider>(); }
        // No DependencyResolverSetup in the system's settings (Akka.DependencyInjection's answer): class-style
        // workflows then use their parameterless constructor.
        catch (Akka.Configuration.ConfigurationException) { return null; }
    }
}
