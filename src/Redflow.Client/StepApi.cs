using System.Text.Json;
using Redflow.Protocol;

namespace Redflow;

/// <summary>
/// The step semantics every runtime shares (worker and inline): unique names per attempt, JSON round trip of
/// every result (a cached result and a fresh one look the same to the handler), and the step timeout.
/// A runtime supplies how a step is executed and recorded, and how children are started.
/// </summary>
internal abstract class StepApi : IStepApi
{
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public async Task<T> RunAsync<T>(string name, Func<CancellationToken, Task<T>> fn, StepOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fn);
        Reserve(name);
        using var activity = RedflowTelemetry.Source.StartActivity("redflow.step");
        activity?.SetTag("redflow.step", name);
        try
        {
            var json = await ExecuteAsync(name, async ct => SerializeResult(name, await fn(ct).ConfigureAwait(false), Workflow), options).ConfigureAwait(false);
            return ReadResult<T>(name, json);
        }
        catch (Exception ex) when (activity is not null)
        {
            activity.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.Message);
            throw;
        }
    }

    public Task RunAsync(string name, Func<CancellationToken, Task> fn, StepOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fn);
        return RunAsync<JsonElement?>(name, async ct =>
        {
            await fn(ct).ConfigureAwait(false);
            return null;
        }, options);
    }

    public async Task<TOut> RunWorkflowAsync<TOut>(string name, string workflow, object? input, ChildWorkflowOptions? options = null)
    {
        Reserve(name);
        Names.Check(workflow, "workflow name");
        if (options?.Timeout is { } timeout && timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), timeout, $"Step '{name}': ChildWorkflowOptions.Timeout must be positive.");
        using var activity = RedflowTelemetry.Source.StartActivity("redflow.child.wait");
        activity?.SetTag("redflow.step", name);
        activity?.SetTag("redflow.child_workflow", workflow);
        var json = await RunChildAsync(name, workflow, input, options ?? new ChildWorkflowOptions()).ConfigureAwait(false);
        return ReadResult<TOut>(name, json);
    }

    public async Task<string> EmitWorkflowAsync(string name, string workflow, object? input, ChildWorkflowOptions? options = null)
    {
        Reserve(name);
        Names.Check(workflow, "workflow name");
        using var activity = RedflowTelemetry.Source.StartActivity("redflow.child.start");
        activity?.SetTag("redflow.step", name);
        activity?.SetTag("redflow.child_workflow", workflow);
        return await EmitChildAsync(name, workflow, input, options ?? new ChildWorkflowOptions()).ConfigureAwait(false);
    }

    public Task SleepAsync(string name, TimeSpan duration)
    {
        if (duration <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(duration), duration, $"Step '{name}': the sleep's duration must be positive.");
        return WaitAsync<JsonElement?>(new WaitRequest(name, WaitKind.Sleep, null) { Relative = duration });
    }

    public Task SleepUntilAsync(string name, DateTimeOffset until) =>
        WaitAsync<JsonElement?>(new WaitRequest(name, WaitKind.Sleep, null) { Until = until });

    public Task<T> WaitForSignalAsync<T>(string name, string signal, WaitOptions? options = null)
    {
        Names.Check(signal, "signal name");
        if (options?.Key is not null)
            throw new ArgumentException($"Step '{name}': WaitOptions.Key applies to event waits; a signal goes to one run and has no key.", nameof(options));
        return WaitAsync<T>(new WaitRequest(name, WaitKind.Signal, signal) { Relative = CheckTimeout(name, options) });
    }

    public Task<T> WaitForEventAsync<T>(string name, string eventName, WaitOptions? options = null)
    {
        Names.Check(eventName, "event name");
        if (options?.Key is { } key) Names.Check(key, "event key");
        return WaitAsync<T>(new WaitRequest(name, WaitKind.Event, eventName) { Key = options?.Key, Relative = CheckTimeout(name, options) });
    }

    private static TimeSpan? CheckTimeout(string name, WaitOptions? options) => options?.Timeout is { } t && t <= TimeSpan.Zero
        ? throw new ArgumentOutOfRangeException(nameof(options), t, $"Step '{name}': WaitOptions.Timeout must be positive.")
        : options?.Timeout;

    private async Task<T> WaitAsync<T>(WaitRequest wait)
    {
        Reserve(wait.Step);
        using var activity = RedflowTelemetry.Source.StartActivity("redflow.wait");
        activity?.SetTag("redflow.step", wait.Step);
        activity?.SetTag("redflow.wait.kind", wait.Kind.ToString());
        if (wait.Name is not null) activity?.SetTag("redflow.wait.name", wait.Name);
        try
        {
            return ReadResult<T>(wait.Step, await WaitCoreAsync(wait).ConfigureAwait(false));
        }
        catch (Exception ex) when (activity is not null)
        {
            activity.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.Message);
            throw;
        }
    }

    /// <summary>
    /// Waits for a sleep, a signal or an event: returns the wait's result as JSON (a sleep's is <c>null</c>), or throws
    /// <see cref="RedflowTimeoutException"/> past its timeout. On a worker, a wait that cannot be answered now makes the
    /// run suspend, and the call simply never returns in this attempt.
    /// </summary>
    protected abstract Task<string> WaitCoreAsync(WaitRequest wait);

    /// <summary>The workflow whose steps these are (named in errors), when known.</summary>
    protected virtual string? Workflow => null;

    /// <summary>Runs (or serves from the record) step <paramref name="name"/>; returns its result as JSON.</summary>
    protected abstract Task<string> ExecuteAsync(string name, Func<CancellationToken, Task<string>> invoke, StepOptions? options);

    /// <summary>Starts the child once and waits for it; returns its output as JSON.</summary>
    protected abstract Task<string> RunChildAsync(string name, string workflow, object? input, ChildWorkflowOptions options);

    /// <summary>Starts the child once; returns its run id.</summary>
    protected abstract Task<string> EmitChildAsync(string name, string workflow, object? input, ChildWorkflowOptions options);

    /// <summary>Runs a step function under its timeout: at the deadline its token is canceled and the step fails.</summary>
    internal static async Task<string> InvokeAsync(string name, Func<CancellationToken, Task<string>> invoke, StepOptions? options, CancellationToken runToken)
    {
        if (options?.Timeout is not { } timeout)
            return await invoke(runToken).ConfigureAwait(false);
        if (timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), timeout, $"Step '{name}': StepOptions.Timeout must be positive.");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(runToken);
        var task = invoke(cts.Token);
        try
        {
            return await task.WaitAsync(timeout, runToken).ConfigureAwait(false);
        }
        catch (TimeoutException ex) when (!(task.IsFaulted && task.Exception!.InnerExceptions.Contains(ex)))
        {
            // The deadline passed (a TimeoutException thrown by fn itself is fn's failure, not the step's timeout).
            cts.Cancel();
            _ = task.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default); // observe a late fault
            throw new RedflowTimeoutException($"Step '{name}' timed out after {timeout}.");
        }
    }

    private void Reserve(string name)
    {
        Names.Check(name, "step name");
        lock (_names)
        {
            if (!_names.Add(name))
                throw new InvalidOperationException($"Step '{name}' was already called in this run: step names must be unique within a run.");
        }
    }

    internal static string SerializeResult<T>(string name, T value, string? workflow = null)
    {
        try
        {
            return RedflowJson.Serialize(value);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            // ArgumentException: a NaN or infinite number (JSON has none).
            var of = workflow is null ? "" : $" of workflow '{workflow}'";
            throw new NonRetriableException($"The result of step '{name}'{of} ({typeof(T).Name}) cannot be serialized to JSON: {ex.Message}", ex);
        }
    }

    internal static T ReadResult<T>(string name, string json)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(json, RedflowJson.Options)!;
        }
        catch (JsonException ex)
        {
            throw new NonRetriableException($"The recorded result of step '{name}' does not fit {typeof(T).Name} at {ex.Path ?? "$"}: {ex.Message}", ex);
        }
    }
}
