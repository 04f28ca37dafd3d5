using System.Collections.Concurrent;
using System.Text.Json;
using Redflow.Protocol;
using StackExchange.Redis;

namespace Redflow;

/// <summary>Settings of a <see cref="RedflowClient"/>.</summary>
public sealed record RedflowClientOptions
{
    /// <summary><c>redis://[user:password@]host[:port][/db]</c>, <c>rediss://</c> for TLS, or a StackExchange.Redis configuration string.</summary>
    public string Url { get; init; } = "redis://localhost:6379";

    /// <summary>
    /// A StackExchange.Redis configuration to connect with instead of <see cref="Url"/> (for settings a URL cannot
    /// carry: several endpoints of a Redis Cluster, TLS callbacks, a tunnel, timeouts). When set, <see cref="Url"/>
    /// is ignored. Redflow connects with a copy (the object is not changed) on which <c>AbortOnConnectFail</c> is
    /// false and <c>ClientName</c> defaults to <c>"redflow"</c>. Default null.
    /// </summary>
    public ConfigurationOptions? Configuration { get; init; }

    /// <summary>
    /// Opt-in durability against a primary's failover: after each emit, <c>WAIT</c> until this many replicas have
    /// the write (at most <see cref="WaitForReplicasTimeout"/>); the emit throws <see cref="RedflowException"/> when
    /// fewer acknowledged. Narrows, does not close, the window in which an acknowledged emit can be lost to an
    /// asynchronous-replication failover (see docs/redis-cluster.md). Default 0: off.
    /// </summary>
    public int WaitForReplicas { get; init; }

    /// <summary>How long a <see cref="WaitForReplicas"/> wait may take. Default 1 s.</summary>
    public TimeSpan WaitForReplicasTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The key prefix: every key is under <c>{Prefix}:</c>. Default <c>"redflow"</c>.</summary>
    public string Prefix { get; init; } = "redflow";

    /// <summary>How long an idempotency key is kept after its run finished. Default 24 h.</summary>
    public TimeSpan IdempotencyWindow { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Inputs, signal and event payloads larger than this (as UTF-8 JSON) are rejected. Default 512 KiB.</summary>
    public int MaxPayloadBytes { get; init; } = 512 * 1024;

    /// <summary>How long a sent event is kept for waits that reach it later (and its idempotency key). Default 24 h.</summary>
    public TimeSpan EventRetention { get; init; } = TimeSpan.FromHours(24);
}

/// <summary>Emits runs and inspects them.</summary>
public interface IRedflowClient : IAsyncDisposable
{
    /// <summary>Emits a run of <paramref name="workflow"/>; when this returns the run is in Redis.</summary>
    Task<RunHandle> EmitWorkflowAsync(string workflow, object? input, EmitOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>Emits a run of a known definition, its input checked at compile time and validated before anything is written.</summary>
    Task<RunHandle<TOutput>> EmitWorkflowAsync<TInput, TOutput>(WorkflowDefinition<TInput, TOutput> workflow, TInput input, EmitOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>A handle to an existing run (no round trip).</summary>
    RunHandle GetHandle(string runId);

    /// <summary>The run, or null when there is none with that id.</summary>
    Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken = default);

    /// <summary>The run's recorded steps, in the order they first ran.</summary>
    Task<IReadOnlyList<StepRecord>> GetRunStepsAsync(string runId, CancellationToken cancellationToken = default);

    /// <summary>Runs, newest first, filtered and paged.</summary>
    Task<IReadOnlyList<RunRecord>> ListRunsAsync(ListRunsParams? parameters = null, CancellationToken cancellationToken = default);

    /// <summary>The registered workflows.</summary>
    Task<IReadOnlyList<WorkflowMeta>> ListWorkflowsAsync(CancellationToken cancellationToken = default);

    /// <summary>One registered workflow, or null.</summary>
    Task<WorkflowMeta?> GetWorkflowMetaAsync(string workflow, CancellationToken cancellationToken = default);

    /// <summary>Engine-wide counts.</summary>
    Task<RedflowStats> GetStatsAsync(CancellationToken cancellationToken = default);

    /// <summary>Cancels a run: true when the cancel was recorded, false for an unknown or finished run.</summary>
    Task<bool> CancelRunAsync(string runId, string? reason = null, CancellationToken cancellationToken = default);

    /// <summary>A new run of a run's workflow with the same input; its record points at the original.</summary>
    Task<RunHandle> RerunAsync(string runId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends signal <paramref name="signal"/> to a run. Buffered: a signal sent before the run reaches its wait is kept
    /// (per run and signal name, in the order sent) and taken by the next wait of that name. True for a scheduled, queued,
    /// running or waiting run; false for an unknown or finished one (nothing is written).
    /// </summary>
    Task<bool> SignalRunAsync(string runId, string signal, object? payload = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends event <paramref name="name"/>: every run waiting on its name and key takes it (once per run), runs whose
    /// wait comes later find it for <see cref="RedflowClientOptions.EventRetention"/>, and workflows with an
    /// <see cref="EventTrigger"/> of that name each start one run with the payload as input.
    /// </summary>
    Task<EventSent> SendEventAsync(string name, object? payload = null, SendEventOptions? options = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes a <see cref="RunStatus.Failed"/> or <see cref="RunStatus.Canceled"/> run back to <see cref="RunStatus.Queued"/>
    /// as the same run: its recorded steps are kept (they do not run again) and it gets a fresh budget of attempts. A run
    /// in another status is left as it is (the handle is returned); an unknown run throws <see cref="RedflowException"/>.
    /// </summary>
    Task<RunHandle> ResumeRunAsync(string runId, CancellationToken cancellationToken = default);
}

/// <summary>Creates clients.</summary>
public static class RedflowClient
{
    /// <summary>A client for <paramref name="url"/> under the default prefix. Connects lazily: never blocks.</summary>
    public static IRedflowClient Create(string url) => Create(new RedflowClientOptions { Url = url });

    /// <summary>A client with options. Connects lazily: never blocks.</summary>
    public static IRedflowClient Create(RedflowClientOptions options) =>
        new RedisRedflowClient(options, new RedisHandle(Validate(options)), ownsConnection: true);

    /// <summary>Checks every option (throws <see cref="ArgumentException"/> naming it) and returns the connection's configuration.</summary>
    internal static ConfigurationOptions Validate(RedflowClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var configuration = RedisConnection.Resolve(options.Url, options.Configuration);
        RedisConnection.CheckPrefix(options.Prefix);
        RedisConnection.CheckReplicaWait(options.WaitForReplicas, options.WaitForReplicasTimeout);
        if (options.IdempotencyWindow <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), options.IdempotencyWindow, "IdempotencyWindow must be positive.");
        if (options.MaxPayloadBytes <= 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxPayloadBytes, "MaxPayloadBytes must be positive.");
        if (options.EventRetention <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), options.EventRetention, "EventRetention must be positive.");
        return configuration;
    }
}

/// <summary>One lazily connected multiplexer, shared by the client and the worker of a process.</summary>
/// <summary>
/// An emit as the client's one emit path takes it: the caller's options, plus what the engine sets itself (the queue
/// and attempts of a typed definition, the parent of a child, the run a rerun repeats, a derived run id).
/// </summary>
internal sealed record EmitRequest(string Workflow, string InputJson)
{
    public EmitOptions? Options { get; init; }
    public string? Queue { get; init; }
    public int? MaxAttempts { get; init; }
    public string? ParentRunId { get; init; }
    public string? RerunOf { get; init; }
    /// <summary>The run id to use (a child's is derived from parent, step and attempt); null makes a new one.</summary>
    public string? RunId { get; init; }
}

internal sealed class RedisHandle(ConfigurationOptions configuration) : IAsyncDisposable
{
    private readonly Lazy<Task<ConnectionMultiplexer>> _connection =
        new(() => ConnectionMultiplexer.ConnectAsync(configuration), LazyThreadSafetyMode.ExecutionAndPublication);

    public ConfigurationOptions Configuration { get; } = configuration;

    public Task<ConnectionMultiplexer> GetAsync() => _connection.Value;

    public async ValueTask DisposeAsync()
    {
        if (_connection.IsValueCreated)
        {
            try { await (await _connection.Value.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false); }
            catch (RedisConnectionException) { }
        }
    }
}

/// <summary>The client over Redis.</summary>
internal sealed class RedisRedflowClient : IRedflowClient
{
    private readonly RedflowClientOptions _options;
    private readonly RedisHandle _redis;
    private readonly bool _ownsConnection;
    private readonly Keys _keys;
    private readonly Lazy<Task<RedisStore>> _store;
    private readonly Lazy<Task> _subscription;
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiters = new(StringComparer.Ordinal);

    /// <summary>How often a waiting <c>ResultAsync</c> re-reads the run, in case a completion message was lost.</summary>
    internal static readonly TimeSpan FallbackPoll = TimeSpan.FromSeconds(2);

    internal RedisRedflowClient(RedflowClientOptions options, RedisHandle redis, bool ownsConnection)
    {
        _options = options;
        _redis = redis;
        _ownsConnection = ownsConnection;
        _keys = new Keys(options.Prefix);
        var replicaWait = RedisConnection.CheckReplicaWait(options.WaitForReplicas, options.WaitForReplicasTimeout);
        _store = new(async () => new RedisStore(await _redis.GetAsync().ConfigureAwait(false), _keys, replicaWait));
        _subscription = new(SubscribeAsync);
    }

    internal Task<RedisStore> StoreAsync() => _store.Value;

    /// <summary>One PING over the client's connection: its round trip, or the error (for health checks).</summary>
    internal async Task<TimeSpan> PingAsync(CancellationToken cancellationToken)
    {
        var mux = await _redis.GetAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        return await mux.GetDatabase().PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    // ---- emit ----------------------------------------------------------------------------------------

    public async Task<RunHandle> EmitWorkflowAsync(string workflow, object? input, EmitOptions? options = null, CancellationToken cancellationToken = default)
    {
        var id = await EmitAsync(new EmitRequest(workflow, SerializeInput(workflow, input)) { Options = options }, cancellationToken).ConfigureAwait(false);
        return new RunHandle(this, id);
    }

    public async Task<RunHandle<TOutput>> EmitWorkflowAsync<TInput, TOutput>(WorkflowDefinition<TInput, TOutput> workflow, TInput input, EmitOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(workflow);
        var json = SerializeInput(workflow.Name, input);
        workflow.ValidateInput(json);
        var id = await EmitAsync(new EmitRequest(workflow.Name, json)
        {
            Options = options, Queue = options?.Queue ?? workflow.Options.Queue, MaxAttempts = workflow.Options.MaxAttempts,
        }, cancellationToken).ConfigureAwait(false);
        return new RunHandle<TOutput>(this, id);
    }

    /// <summary>The one emit path: checks names and sizes, makes the run id, calls the emit script.</summary>
    internal async Task<string> EmitAsync(EmitRequest request, CancellationToken cancellationToken)
    {
        var (workflow, options) = (request.Workflow, request.Options);
        Names.Check(workflow, "workflow name");
        if (options?.IdempotencyKey is { } key) Names.Check(key, "idempotency key");
        if (options?.Key is { } flowKey) Names.Check(flowKey, "flow-control key (EmitOptions.Key)");
        var queue = request.Queue ?? options?.Queue;
        if (queue is not null) Names.Check(queue, "queue", allowColon: false);
        if (options?.Delay is { } delay && delay < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(request), delay, "EmitOptions.Delay must not be negative.");
        cancellationToken.ThrowIfCancellationRequested();
        var store = await StoreAsync().ConfigureAwait(false);
        var runId = request.RunId ?? RunIds.New();
        using var activity = RedflowTelemetry.Source.StartActivity("redflow.emit", System.Diagnostics.ActivityKind.Producer);
        activity?.SetTag("redflow.workflow", workflow);
        activity?.SetTag("redflow.run_id", runId);
        if (request.ParentRunId is not null) activity?.SetTag("redflow.parent_run_id", request.ParentRunId);
        // Durability point: when the emit script returns, the run is in Redis (G1); its id was made here, so a retried
        // emit finds it instead of making a second run. The emitting code's trace context is stored with the run, so
        // the worker's spans join this trace.
        var (id, created) = await store.EmitAsync(new NewRun(runId, workflow, request.InputJson)
        {
            Queue = queue, MaxAttempts = request.MaxAttempts, RunAt = options?.RunAt, Delay = options?.Delay,
            IdempotencyKey = options?.IdempotencyKey, IdempotencyWindow = _options.IdempotencyWindow,
            ParentRunId = request.ParentRunId, RerunOf = request.RerunOf, TraceParent = RedflowTelemetry.CurrentTraceParent(),
            Priority = options?.Priority ?? 0, Key = options?.Key,
        }).ConfigureAwait(false);
        activity?.SetTag("redflow.run_id", id);
        activity?.SetTag("redflow.created", created);
        return id;
    }

    internal string SerializeInput(string workflow, object? input)
    {
        string json;
        try
        {
            json = RedflowJson.Serialize(input);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            // ArgumentException: a NaN or infinite number (JSON has none).
            throw new InputValidationException($"The input of workflow '{workflow}' ({input!.GetType().Name}) cannot be serialized to JSON: {ex.Message}", ex);
        }
        var size = System.Text.Encoding.UTF8.GetByteCount(json);
        if (size > _options.MaxPayloadBytes)
            throw new InputValidationException($"The input of workflow '{workflow}' is {size} bytes of JSON; the limit is {_options.MaxPayloadBytes} bytes (RedflowClientOptions.MaxPayloadBytes).");
        return json;
    }

    // ---- results -------------------------------------------------------------------------------------

    public RunHandle GetHandle(string runId) => new(this, Names.Check(runId, "run id"));

    internal async Task<RunState> GetStateAsync(string runId, CancellationToken cancellationToken)
    {
        var store = await StoreAsync().ConfigureAwait(false);
        return await store.GetStateAsync(runId).WaitAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new RedflowException($"Run {runId} does not exist (or its retention has passed).");
    }

    /// <summary>
    /// Waits for a run to finish: registers a waiter on the client's one completion subscription before it
    /// reads the state (so a completion in between is not missed), then wakes on the message, with a slow
    /// fallback poll in case a message was lost.
    /// </summary>
    internal async Task<JsonElement> WaitForResultAsync(string runId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be positive.");
        await _subscription.Value.ConfigureAwait(false);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var waiter = _waiters.GetOrAdd(runId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            var state = await GetStateAsync(runId, cancellationToken).ConfigureAwait(false);
            switch (state.Status)
            {
                case RunStatus.Succeeded:
                    return state.Output ?? RedflowJson.Parse(null);
                case RunStatus.Failed:
                    throw new RunFailedException(runId, state.Error ?? new RunError("Unknown", "No error was recorded."));
                case RunStatus.Canceled:
                    var run = await GetRunAsync(runId, cancellationToken).ConfigureAwait(false);
                    throw new CanceledException(runId, run?.CancelReason);
            }
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new RedflowTimeoutException($"Run {runId} did not finish within {timeout} (it is {state.Status}).");
            try
            {
                await waiter.Task.WaitAsync(left < FallbackPoll ? left : FallbackPoll, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException) { }
            _waiters.TryRemove(new KeyValuePair<string, TaskCompletionSource>(runId, waiter));
        }
    }

    private async Task SubscribeAsync()
    {
        var redis = await _redis.GetAsync().ConfigureAwait(false);
        var queue = await redis.GetSubscriber().SubscribeAsync(_keys.Done).ConfigureAwait(false);
        // A message names one finished run, or several separated by newlines (a worker's batch of completions).
        queue.OnMessage(message =>
        {
            foreach (var runId in ((string)message.Message!).Split('\n'))
                if (_waiters.TryRemove(runId, out var waiter)) waiter.TrySetResult();
        });
    }

    // ---- inspection ----------------------------------------------------------------------------------

    public async Task<RunRecord?> GetRunAsync(string runId, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync().ConfigureAwait(false);
        return await store.GetRunAsync(Names.Check(runId, "run id")).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<StepRecord>> GetRunStepsAsync(string runId, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync().ConfigureAwait(false);
        return await store.GetStepsAsync(Names.Check(runId, "run id")).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<RunRecord>> ListRunsAsync(ListRunsParams? parameters = null, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync().ConfigureAwait(false);
        return await store.ListRunsAsync(parameters ?? new ListRunsParams()).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<WorkflowMeta>> ListWorkflowsAsync(CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync().ConfigureAwait(false);
        return await store.ListWorkflowsAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<WorkflowMeta?> GetWorkflowMetaAsync(string workflow, CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync().ConfigureAwait(false);
        return await store.GetWorkflowMetaAsync(Names.Check(workflow, "workflow name")).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<RedflowStats> GetStatsAsync(CancellationToken cancellationToken = default)
    {
        var store = await StoreAsync().ConfigureAwait(false);
        return await store.GetStatsAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> CancelRunAsync(string runId, string? reason = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var store = await StoreAsync().ConfigureAwait(false);
        return await store.CancelAsync(Names.Check(runId, "run id"), reason).ConfigureAwait(false);
    }

    // ---- signals and events --------------------------------------------------------------------------

    public async Task<bool> SignalRunAsync(string runId, string signal, object? payload = null, CancellationToken cancellationToken = default)
    {
        Names.Check(runId, "run id");
        Names.Check(signal, "signal name");
        var json = SerializePayload($"The payload of signal '{signal}'", payload);
        cancellationToken.ThrowIfCancellationRequested();
        var store = await StoreAsync().ConfigureAwait(false);
        // Durability point: when the signal script returns true, the signal is buffered with the run (or already
        // requeued it); a wait of that name takes it, in the order sent.
        return await store.SignalAsync(runId, signal, json).ConfigureAwait(false);
    }

    public async Task<EventSent> SendEventAsync(string name, object? payload = null, SendEventOptions? options = null, CancellationToken cancellationToken = default)
    {
        Names.Check(name, "event name");
        if (options?.Key is { } key) Names.Check(key, "event key");
        if (options?.IdempotencyKey is { } idem) Names.Check(idem, "idempotency key");
        var json = SerializePayload($"The payload of event '{name}'", payload);
        cancellationToken.ThrowIfCancellationRequested();
        var store = await StoreAsync().ConfigureAwait(false);
        using var activity = RedflowTelemetry.Source.StartActivity("redflow.event.send", System.Diagnostics.ActivityKind.Producer);
        activity?.SetTag("redflow.event", name);
        // Durability point: when the script returns, the event is kept for EventRetention, the runs waiting on it are
        // requeued and the runs its triggers start exist, all in one script call.
        return await store.SendEventAsync(new NewEvent(RunIds.NewEvent(), name, json)
        {
            Key = options?.Key, IdempotencyKey = options?.IdempotencyKey, Retention = _options.EventRetention,
            TraceParent = RedflowTelemetry.CurrentTraceParent(),
        }).ConfigureAwait(false);
    }

    /// <summary>A signal's or event's payload as JSON, within <see cref="RedflowClientOptions.MaxPayloadBytes"/>.</summary>
    private string SerializePayload(string what, object? payload)
    {
        string json;
        try
        {
            json = payload is JsonElement element ? element.GetRawText() : RedflowJson.Serialize(payload);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            throw new ArgumentException($"{what} ({payload!.GetType().Name}) cannot be serialized to JSON: {ex.Message}", nameof(payload), ex);
        }
        var size = System.Text.Encoding.UTF8.GetByteCount(json);
        if (size > _options.MaxPayloadBytes)
            throw new ArgumentException($"{what} is {size} bytes of JSON; the limit is {_options.MaxPayloadBytes} bytes (RedflowClientOptions.MaxPayloadBytes).", nameof(payload));
        return json;
    }

    public async Task<RunHandle> RerunAsync(string runId, CancellationToken cancellationToken = default)
    {
        var original = await GetRunAsync(runId, cancellationToken).ConfigureAwait(false)
            ?? throw new ArgumentException($"Run {runId} does not exist (or its retention has passed).", nameof(runId));
        var id = await EmitAsync(new EmitRequest(original.Workflow, original.Input.GetRawText())
        {
            Queue = original.Queue, RerunOf = original.Id, Options = new EmitOptions { Key = original.Key, Priority = original.Priority },
        }, cancellationToken).ConfigureAwait(false);
        return new RunHandle(this, id);
    }

    public async Task<RunHandle> ResumeRunAsync(string runId, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var store = await StoreAsync().ConfigureAwait(false);
        var (outcome, _) = await store.ResumeAsync(Names.Check(runId, "run id")).ConfigureAwait(false);
        if (outcome < 0) throw new RedflowException($"Run {runId} does not exist (or its retention has passed).");
        return new RunHandle(this, runId);
    }

    public async ValueTask DisposeAsync()
    {
        if (_ownsConnection) await _redis.DisposeAsync().ConfigureAwait(false);
    }
}
