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
internal sealed record RunScope(RunInfo Run, RunStop Stop, IStepApi Step, IServiceProvider? Services = null);

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
