using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Redflow.Protocol;
using StackExchange.Redis;

namespace Redflow.Runtime;

/// <summary>
/// One worker's runtime on an actor system: checks the options and Redis, publishes the workflows, starts the
/// WorkerActor, the reaper and the cron actor beside it, and the doorbell and cancel subscriptions. <see cref="RedflowWorker"/> runs it on an actor system
/// of its own; <c>WithRedflowWorker</c> runs it on the host's.
/// </summary>
internal sealed class RedflowRuntime
{
    private readonly RedisHandle _redis;
    private readonly ChannelMessageQueue[] _subscriptions;
    private readonly StartWorkerOptions _options;
    private readonly ILogger _logger;
    private int _stopped;

    private readonly IActorRef[] _singletons;

    private RedflowRuntime(IActorRef worker, IActorRef[] singletons, RedisHandle redis, ChannelMessageQueue[] subscriptions, StartWorkerOptions options, ILogger logger, string node, WorkerHealth health)
    {
        Worker = worker;
        _singletons = singletons;
        Health = health;
        _redis = redis;
        _subscriptions = subscriptions;
        _options = options;
        _logger = logger;
        Node = node;
    }

    public IActorRef Worker { get; }

    public string Node { get; }

    /// <summary>Redis reachability, pollers and lease renewal of this worker, for health checks.</summary>
    public WorkerHealth Health { get; }

    /// <summary>The options it runs with.</summary>
    public StartWorkerOptions Options => _options;

    /// <summary>One PING over the worker's connection: its round trip, or the error (for health checks).</summary>
    public async Task<TimeSpan> PingAsync(CancellationToken cancellationToken)
    {
        var mux = await _redis.GetAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        return await mux.GetDatabase().PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public static async Task<RedflowRuntime> StartAsync(ActorSystem system, StartWorkerOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var configuration = RedisConnection.Resolve(options.Url, options.Configuration);
        configuration.AllowAdmin = true; // for the CONFIG GET of the precondition checks
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
            var store = new RedisStore(mux, new Keys(options.Prefix), RedisConnection.CheckReplicaWait(options.WaitForReplicas, options.WaitForReplicasTimeout));
            // The worker's own client (child workflows, cron) shares its connection; its emits are not waited for.
            var client = new RedisRedflowClient(new RedflowClientOptions
            {
                Url = options.Url, Configuration = options.Configuration, Prefix = options.Prefix, MaxPayloadBytes = options.MaxPayloadBytes,
            }, redis, ownsConnection: false);
            var ctx = new WorkerContext(options, store, client, node, options.Workflows.ToDictionary(w => w.Name, StringComparer.Ordinal));
            await Registration.RegisterAsync(ctx).ConfigureAwait(false);

            var clustered = system is ExtendedActorSystem { Provider: Akka.Cluster.IClusterActorRefProvider };
            // Names depend only on the prefix, so the cluster singletons have the same path on every node.
            var name = "redflow-" + Slug(options.Prefix);
            var worker = system.ActorOf(Props.Create(() => new WorkerActor(ctx)), name);
            IActorRef[] singletons = options.RunReaperAndCron
                ? [Singleton(system, clustered, ReaperActor.SupervisedProps(ctx), name + "-reaper"), Singleton(system, clustered, CronActor.SupervisedProps(ctx), name + "-cron")]
                : [];
            var subscriber = mux.GetSubscriber();
            var doorbell = await subscriber.SubscribeAsync(store.Keys.Doorbell).ConfigureAwait(false);
            doorbell.OnMessage(_ => worker.Tell(Poll.Instance));
            var cancels = await subscriber.SubscribeAsync(store.Keys.Cancel).ConfigureAwait(false);
            cancels.OnMessage(m => worker.Tell(new CancelRequested((string)m.Message!)));
            logger.LogInformation("Redflow worker {Node} ({App}) started: queues {Queues}, concurrency {Concurrency}, {Mode}",
                node, options.App, string.Join(", ", options.EffectiveQueues), options.Concurrency, clustered ? "reaper and cron as cluster singletons" : "standalone");
            var runtime = new RedflowRuntime(worker, singletons, redis, [doorbell, cancels], options, logger, node, ctx.Health);
            (options.Services?.GetService(typeof(RedflowWorkers)) as RedflowWorkers)?.Add(runtime); // for the health checks
            return runtime;
        }
        catch
        {
            await redis.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Graceful stop: no new claims, running runs finish within the shutdown timeout or are handed back.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        (_options.Services?.GetService(typeof(RedflowWorkers)) as RedflowWorkers)?.Remove(this);
        try
        {
            var bound = _options.ShutdownTimeout + RunActor.StopWait + TimeSpan.FromSeconds(5);
            await Worker.Ask<WorkerStopped>(new StopWorker(_options.ShutdownTimeout), bound, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AskTimeoutException or TaskCanceledException)
        {
            _logger.LogWarning("Worker {Node} did not stop its runs in time; the reaper will take them back", Node);
        }
        finally
        {
            foreach (var subscription in _subscriptions) await subscription.UnsubscribeAsync().ConfigureAwait(false);
            // Stop the actors (reaper, cron, heartbeat timers) before the connection they use goes away.
            try { await Task.WhenAll(_singletons.Append(Worker).Select(a => a.GracefulStop(TimeSpan.FromSeconds(5)))).ConfigureAwait(false); }
            catch (TaskCanceledException) { _logger.LogWarning("Worker {Node}: actors did not stop within 5 s", Node); }
            await _redis.DisposeAsync().ConfigureAwait(false);
            _logger.LogInformation("Redflow worker {Node} stopped", Node);
        }
    }

    /// <summary>
    /// The reaper or the cron actor. Standalone, this worker runs its own. In an Akka.Cluster it runs once per
    /// cluster, as a singleton managed on every node (the oldest node hosts it; a crash moves it). Correctness never
    /// depends on its uniqueness: the scripts make two at once harmless, and claims reclaim expired leases
    /// themselves, so liveness does not wait for a singleton hand-over.
    /// </summary>
    private static IActorRef Singleton(ActorSystem system, bool clustered, Props props, string name)
    {
        if (!clustered) return system.ActorOf(props, name);
        var settings = Akka.Cluster.Tools.Singleton.ClusterSingletonManagerSettings.Create(system).WithSingletonName("singleton");
        return system.ActorOf(Akka.Cluster.Tools.Singleton.ClusterSingletonManager.Props(props, PoisonPill.Instance, settings), name);
    }

    private static string Slug(string prefix)
    {
        var safe = new string(prefix.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());
        return safe + "-" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(prefix)))[..8].ToLowerInvariant();
    }
}
