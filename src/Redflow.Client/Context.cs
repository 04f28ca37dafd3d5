using System.Text.Json;

namespace Redflow;

/// <summary>The steps of a run: each named step runs at most until its result is recorded, then is served from the record.</summary>
public interface IStepApi
{
    /// <summary>Runs <paramref name="fn"/> as step <paramref name="name"/>, or returns its recorded result from an earlier attempt.</summary>
    Task<T> RunAsync<T>(string name, Func<CancellationToken, Task<T>> fn, StepOptions? options = null);

    /// <summary>Runs <paramref name="fn"/> as step <paramref name="name"/> unless it completed in an earlier attempt.</summary>
    Task RunAsync(string name, Func<CancellationToken, Task> fn, StepOptions? options = null);

    /// <summary>Starts a child run once, as step <paramref name="name"/>, and waits for its output (the parent is suspended meanwhile).</summary>
    Task<TOut> RunWorkflowAsync<TOut>(string name, string workflow, object? input, ChildWorkflowOptions? options = null);

    /// <summary>Starts a child run once, as step <paramref name="name"/>, and returns its run id without waiting.</summary>
    Task<string> EmitWorkflowAsync(string name, string workflow, object? input, ChildWorkflowOptions? options = null);

    /// <summary>
    /// Sleeps durably for <paramref name="duration"/> (on the Redis clock, counted from when step <paramref name="name"/> first
    /// slept): the run waits holding no lease, no slot and no cap, and replays when the time has come.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The duration is zero or negative.</exception>
    Task SleepAsync(string name, TimeSpan duration);

    /// <summary>Sleeps durably until <paramref name="until"/> (on the Redis clock); a time in the past returns at once.</summary>
    Task SleepUntilAsync(string name, DateTimeOffset until);

    /// <summary>
    /// Waits durably for signal <paramref name="signal"/> sent to this run (<see cref="IRedflowClient.SignalRunAsync"/>) and
    /// returns its payload. Signals are buffered per run: one sent before the wait is taken by it, in the order sent.
    /// Past <see cref="WaitOptions.Timeout"/> it throws <see cref="RedflowTimeoutException"/> (recorded: a replay throws it again).
    /// </summary>
    Task<T> WaitForSignalAsync<T>(string name, string signal, WaitOptions? options = null);

    /// <summary>
    /// Waits durably for event <paramref name="eventName"/> (<see cref="IRedflowClient.SendEventAsync"/>) with
    /// <see cref="WaitOptions.Key"/> (or without a key) and returns its payload: the earliest such event sent after the run
    /// was created and not taken by an earlier wait of this run. Past <see cref="WaitOptions.Timeout"/> it throws
    /// <see cref="RedflowTimeoutException"/>.
    /// </summary>
    Task<T> WaitForEventAsync<T>(string name, string eventName, WaitOptions? options = null);
}

/// <summary>What every handler gets besides its input: the run, its cancellation and its steps.</summary>
public abstract class WorkflowHandlerContextBase
{
    private protected WorkflowHandlerContextBase(RunScope scope) => Scope = scope;

    internal RunScope Scope { get; }

    /// <summary>The run.</summary>
    public RunInfo Run => Scope.Run;

    /// <summary>Canceled when the run must stop; <see cref="StopReason"/> says why.</summary>
    public CancellationToken CancellationToken => Scope.Stop.Token;

    /// <summary>Why <see cref="CancellationToken"/> fired, or <see cref="Redflow.StopReason.None"/>.</summary>
    public StopReason StopReason => Scope.Stop.Reason;

    /// <summary>The run's steps.</summary>
    public IStepApi Step => Scope.Step;
}

/// <summary>What an untyped handler gets: the input as JSON, the run, its cancellation and its steps.</summary>
public sealed class WorkflowHandlerContext : WorkflowHandlerContextBase
{
    internal WorkflowHandlerContext(JsonElement input, RunScope scope) : base(scope) => Input = input;

    /// <summary>The run's input.</summary>
    public JsonElement Input { get; }
}

/// <summary>What a typed handler gets: the input, the run, its cancellation and its steps.</summary>
/// <typeparam name="TInput">The input type.</typeparam>
public sealed class WorkflowHandlerContext<TInput> : WorkflowHandlerContextBase
{
    internal WorkflowHandlerContext(TInput input, RunScope scope) : base(scope) => Input = input;

    /// <summary>The run's input.</summary>
    public TInput Input { get; }
}

/// <summary>One run's execution environment, shared by the handler's context and its steps.</summary>
internal sealed record RunScope(RunInfo Run, RunStop Stop, IStepApi Step, IServiceProvider? Services = null)
{
    /// <summary>What the attempt created and the engine disposes when the attempt ends, finished or suspended (a class-style workflow and its DI scope).</summary>
    public AttemptResources Resources { get; } = new();
}

/// <summary>
/// Objects one attempt of a handler owns, disposed once, newest first: by the handler's own <c>finally</c> when it
/// returns, or by the engine when the run is suspended (a suspended handler never returns, so its <c>finally</c> never runs).
/// </summary>
internal sealed class AttemptResources : IAsyncDisposable
{
    private readonly List<object> _items = [];
    private bool _disposed;

    /// <summary>Adds <paramref name="item"/>, to be disposed with the attempt (if it is disposable); returns it.</summary>
    public T Add<T>(T item) where T : notnull
    {
        lock (_items)
        {
            if (!_disposed) _items.Add(item);
        }
        return item;
    }

    public async ValueTask DisposeAsync()
    {
        object[] items;
        lock (_items)
        {
            if (_disposed) return;
            _disposed = true;
            items = [.. _items];
            _items.Clear();
        }
        for (var i = items.Length - 1; i >= 0; i--)
        {
            if (items[i] is IAsyncDisposable a) await a.DisposeAsync().ConfigureAwait(false);
            else if (items[i] is IDisposable d) d.Dispose();
        }
    }
}

/// <summary>A run's cancellation together with its reason: the first reason given wins.</summary>
internal sealed class RunStop : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private int _reason;

    public CancellationToken Token => _cts.Token;

    public StopReason Reason => (StopReason)Volatile.Read(ref _reason);

    /// <summary>Sets the reason (unless one is set) and cancels the token. True when this call set it.</summary>
    public bool Request(StopReason reason)
    {
        if (Interlocked.CompareExchange(ref _reason, (int)reason, (int)StopReason.None) != (int)StopReason.None)
            return false;
        try { _cts.Cancel(); } catch (ObjectDisposedException) { }
        return true;
    }

    public void Dispose() => _cts.Dispose();
}
