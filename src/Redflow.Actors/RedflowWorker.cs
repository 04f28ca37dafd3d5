using Akka.Actor;
using Akka.Configuration;
using Redflow.Runtime;

namespace Redflow;

/// <summary>
/// A worker: leases runs of its workflows from Redis and runs them on an actor system of its own (standalone:
/// it runs its own reaper and cron actor). <see cref="StopAsync"/> (or disposing) stops it gracefully.
/// To run workers in a host or as a cluster, use <c>WithRedflowWorker</c> on an Akka.Hosting builder instead.
/// </summary>
public sealed class RedflowWorker : IAsyncDisposable
{
    private readonly ActorSystem _system;
    private readonly RedflowRuntime _runtime;

    private RedflowWorker(ActorSystem system, RedflowRuntime runtime)
    {
        _system = system;
        _runtime = runtime;
    }

    /// <summary>This worker's node id (unique per start), as shown in stats.</summary>
    public string Node => _runtime.Node;

    /// <summary>
    /// Checks the options and Redis (version 7 or newer, <c>maxmemory-policy noeviction</c>), publishes the
    /// workflows' metadata, and starts polling. Throws <see cref="ArgumentOutOfRangeException"/> naming a bad
    /// option, or <see cref="RedflowException"/> when Redis is unreachable or unfit.
    /// </summary>
    public static async Task<RedflowWorker> StartAsync(StartWorkerOptions options, CancellationToken cancellationToken = default)
    {
        var system = ActorSystem.Create("redflow", ConfigurationFactory.ParseString(AkkaConfig));
        try
        {
            return new RedflowWorker(system, await RedflowRuntime.StartAsync(system, options, cancellationToken).ConfigureAwait(false));
        }
        catch
        {
            await system.Terminate().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Stops taking runs, lets running ones finish within <see cref="StartWorkerOptions.ShutdownTimeout"/>, then
    /// cancels the rest (<see cref="StopReason.WorkerStopping"/>) and hands them back to the queue at once.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        await _runtime.StopAsync(cancellationToken).ConfigureAwait(false);
        await _system.Terminate().ConfigureAwait(false);
    }

    /// <summary>Stops the worker gracefully.</summary>
    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private const string AkkaConfig = """
        akka {
          loglevel = WARNING
          stdout-loglevel = WARNING
          log-dead-letters = off
          log-dead-letters-during-shutdown = off
          coordinated-shutdown.run-by-clr-shutdown-hook = off
        }
        """;
}
