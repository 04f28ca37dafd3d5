using Akka.Actor;
using Akka.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Redflow.Protocol;
using Redflow.Runtime;
using StackExchange.Redis;

namespace Redflow;

/// <summary>
/// A worker: leases runs of its workflows from Redis and runs them on an actor system of its own.
/// <see cref="StopAsync"/> (or disposing) stops it gracefully.
/// </summary>
public sealed class RedflowWorker : IAsyncDisposable
{
    private readonly ActorSystem _system;
    private readonly IActorRef _worker;
    private readonly RedisHandle _redis;
    private readonly StartWorkerOptions _options;
    private readonly ILogger _logger;
    private readonly ChannelMessageQueue[] _subscriptions;
    private int _stopped;

    private RedflowWorker(ActorSystem system, IActorRef worker, RedisHandle redis, StartWorkerOptions options, ILogger logger,
        ChannelMessageQueue[] subscriptions, string node)
    {
        _system = system;
        _worker = worker;
        _redis = redis;
        _options = options;
        _logger = logger;
        _subscriptions = subscriptions;
        Node = node;
    }

    /// <summary>This worker's node id (unique per start), as shown in stats.</summary>
    public string Node { get; }

    /// <summary>
    /// Checks the options and Redis (version 7 or newer, <c>maxmemory-policy noeviction</c>), publishes the
    /// workflows' metadata, and starts polling. Throws <see cref="ArgumentOutOfRangeException"/> naming a bad
    /// option, or <see cref="RedflowException"/> when Redis is unreachable or unfit.
    /// </summary>
    public static async Task<RedflowWorker> StartAsync(StartWorkerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var configuration = RedisConnection.Parse(options.Url);
        configuration.AllowAdmin = true; // for the CONFIG GET / INFO of the precondition checks
        options.Validate(TimeSpan.FromMilliseconds(configuration.SyncTimeout));
        var logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger<RedflowWorker>();
        var redis = new RedisHandle(configuration);
        try
        {
            var mux = await redis.GetAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!mux.IsConnected)
                throw new RedflowException($"Cannot reach Redis at {string.Join(", ", configuration.EndPoints)}: {mux.GetStatus().Trim()}");
            await Preconditions.CheckAsync(mux, options, logger).ConfigureAwait(false);

            var node = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
            var store = new RedisStore(mux, new Keys(options.Prefix));
            var workflows = options.Workflows.ToDictionary(w => w.Name, StringComparer.Ordinal);
            var client = new RedisRedflowClient(new RedflowClientOptions { Url = options.Url, Prefix = options.Prefix, MaxPayloadBytes = options.MaxPayloadBytes }, redis, ownsConnection: false);
            var ctx = new WorkerContext(options, store, client, node, workflows);
            Func<Task> register = () => Registration.RegisterAsync(ctx);
            await register().ConfigureAwait(false);

            var system = ActorSystem.Create("redflow", ConfigurationFactory.ParseString(AkkaConfig));
            var worker = system.ActorOf(Props.Create(() => new WorkerActor(ctx, register)), "worker");
            var subscriber = mux.GetSubscriber();
            var doorbell = await subscriber.SubscribeAsync(store.Keys.Doorbell).ConfigureAwait(false);
            doorbell.OnMessage(_ => worker.Tell(Poll.Instance));
            var cancels = await subscriber.SubscribeAsync(store.Keys.Cancel).ConfigureAwait(false);
            cancels.OnMessage(m => worker.Tell(new CancelRequested((string)m.Message!)));
            logger.LogInformation("Redflow worker {Node} ({App}) started: queues {Queues}, concurrency {Concurrency}",
                node, options.App, string.Join(", ", options.EffectiveQueues), options.Concurrency);
            return new RedflowWorker(system, worker, redis, options, logger, [doorbell, cancels], node);
        }
        catch
        {
            await redis.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Stops taking runs, lets running ones finish within <see cref="StartWorkerOptions.ShutdownTimeout"/>, then
    /// cancels the rest (<see cref="StopReason.WorkerStopping"/>) and hands them back to the queue at once.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        try
        {
            var bound = _options.ShutdownTimeout + RunActor.StopWait + TimeSpan.FromSeconds(5);
            await _worker.Ask<WorkerStopped>(new StopWorker(_options.ShutdownTimeout), bound, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException)
        {
            _logger.LogWarning("Worker {Node} did not stop its runs in time; the reaper will take them back", Node);
        }
        finally
        {
            foreach (var subscription in _subscriptions) await subscription.UnsubscribeAsync().ConfigureAwait(false);
            await _system.Terminate().ConfigureAwait(false);
            await _redis.DisposeAsync().ConfigureAwait(false);
            _logger.LogInformation("Redflow worker {Node} stopped", Node);
        }
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
