using System.Text.Json;
using Redflow.Protocol;

namespace Redflow;

/// <summary>Options of an in-process run (<see cref="RedflowTesting"/>).</summary>
public sealed class RunInlineOptions
{
    /// <summary>Step name → value used instead of running the step (converted to the step's type through JSON).</summary>
    public IDictionary<string, object?> StepOverrides { get; } = new Dictionary<string, object?>(StringComparer.Ordinal);

    /// <summary>Child workflows that <c>RunWorkflowAsync</c>/<c>EmitWorkflowAsync</c> may start; they run inline too.</summary>
    public IList<WorkflowDefinition> Children { get; } = new List<WorkflowDefinition>();

    /// <summary>Signal name → payload every <c>WaitForSignalAsync</c> on that signal gets (a step override by step name wins).</summary>
    public IDictionary<string, object?> Signals { get; } = new Dictionary<string, object?>(StringComparer.Ordinal);

    /// <summary>Event name → payload every <c>WaitForEventAsync</c> on that event gets (a step override by step name wins).</summary>
    public IDictionary<string, object?> Events { get; } = new Dictionary<string, object?>(StringComparer.Ordinal);

    /// <summary>Workflow name → output used instead of running that child.</summary>
    public IDictionary<string, object?> ChildOverrides { get; } = new Dictionary<string, object?>(StringComparer.Ordinal);

    /// <summary>Request cancellation (<see cref="StopReason.CancelRequested"/>) after this long.</summary>
    public TimeSpan? CancelAfter { get; init; }

    /// <summary>Request cancellation (<see cref="StopReason.CancelRequested"/>) when this token fires.</summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>The attempt the handler sees in <see cref="RunInfo.Attempt"/>. Default 1.</summary>
    public int Attempt { get; init; } = 1;

    /// <summary>The run id the handler sees. Default <c>inline_run</c>.</summary>
    public string RunId { get; init; } = "inline_run";

    /// <summary>Services for class-style workflows (constructor injection).</summary>
    public IServiceProvider? Services { get; init; }
}

/// <summary>What an untyped in-process run ended with.</summary>
public sealed class InlineRunResult
{
    internal InlineRunResult(bool succeeded, JsonElement? output, Exception? error, IReadOnlyList<string> steps)
    {
        Succeeded = succeeded;
        Output = output;
        Error = error;
        Steps = steps;
    }

    /// <summary>True when the handler returned an output that serialized.</summary>
    public bool Succeeded { get; }

    /// <summary>The output, as JSON (as a worker would store it).</summary>
    public JsonElement? Output { get; }

    /// <summary>Why it failed: the handler's exception, or <see cref="CanceledException"/> when a cancel was requested.</summary>
    public Exception? Error { get; }

    /// <summary>Step names in the order they ran, overridden ones included.</summary>
    public IReadOnlyList<string> Steps { get; }
}

/// <summary>What a typed in-process run ended with.</summary>
/// <typeparam name="TOutput">The workflow's output type.</typeparam>
public sealed class InlineRunResult<TOutput>
{
    internal InlineRunResult(bool succeeded, TOutput? output, Exception? error, IReadOnlyList<string> steps)
    {
        Succeeded = succeeded;
        Output = output;
        Error = error;
        Steps = steps;
    }

    /// <summary>True when the handler returned an output that serialized.</summary>
    public bool Succeeded { get; }

    /// <summary>The output, JSON round-tripped exactly as on a worker.</summary>
    public TOutput? Output { get; }

    /// <summary>Why it failed: the handler's exception, or <see cref="CanceledException"/> when a cancel was requested.</summary>
    public Exception? Error { get; }

    /// <summary>Step names in the order they ran, overridden ones included.</summary>
    public IReadOnlyList<string> Steps { get; }
}

/// <summary>
/// Runs a workflow's handler in this process, with no Redis and no actor system. Steps behave as on a worker:
/// unique names, <see cref="StepOptions.Timeout"/>, every result JSON round-tripped; children run inline.
/// </summary>
public static class RedflowTesting
{
    /// <summary>Runs a typed workflow inline.</summary>
    public static async Task<InlineRunResult<TOutput>> RunInlineAsync<TInput, TOutput>(
        WorkflowDefinition<TInput, TOutput> workflow, TInput input, RunInlineOptions? options = null)
    {
        var (json, error, steps) = await RunAsync(workflow, input, options ?? new RunInlineOptions()).ConfigureAwait(false);
        if (error is not null) return new InlineRunResult<TOutput>(false, default, error, steps);
        return new InlineRunResult<TOutput>(true, JsonSerializer.Deserialize<TOutput>(json!, RedflowJson.Options), null, steps);
    }

    /// <summary>Runs any workflow inline; the output comes back as JSON.</summary>
    public static async Task<InlineRunResult> RunInlineAsync(WorkflowDefinition workflow, object? input, RunInlineOptions? options = null)
    {
        var (json, error, steps) = await RunAsync(workflow, input, options ?? new RunInlineOptions()).ConfigureAwait(false);
        return new InlineRunResult(error is null, error is null ? RedflowJson.Parse(json) : null, error, steps);
    }

    private static async Task<(string? Output, Exception? Error, IReadOnlyList<string> Steps)> RunAsync(
        WorkflowDefinition workflow, object? input, RunInlineOptions options)
    {
        ArgumentNullException.ThrowIfNull(workflow);
        using var stop = new RunStop();
        using var cancelAfter = options.CancelAfter is { } after ? new CancellationTokenSource(after) : null;
        using var onAfter = cancelAfter?.Token.Register(() => stop.Request(StopReason.CancelRequested));
        using var onToken = options.CancellationToken.Register(() => stop.Request(StopReason.CancelRequested));
        var steps = new InlineStepApi(options, stop.Token);
        var run = new RunInfo(options.RunId, workflow.Name, workflow.Options.Queue, options.Attempt, workflow.Options.MaxAttempts);
        try
        {
            var inputJson = input is JsonElement element ? element.GetRawText() : RedflowJson.Serialize(input);
            var output = await workflow.ExecuteAsync(inputJson, new RunScope(run, stop, steps, options.Services)).ConfigureAwait(false);
            if (stop.Reason == StopReason.CancelRequested) return (null, new CanceledException(run.Id, null), steps.Names);
            return (output, null, steps.Names);
        }
        catch (Exception ex)
        {
            // As on a worker, the fate follows the stop reason: a requested cancel ends the run canceled.
            return (null, stop.Reason == StopReason.CancelRequested ? new CanceledException(run.Id, null) : ex, steps.Names);
        }
    }

    /// <summary>Steps of an inline run: overrides, the step function, or a child run inline.</summary>
    private sealed class InlineStepApi(RunInlineOptions options, CancellationToken token) : StepApi
    {
        private readonly List<string> _names = [];
        private int _children;

        public IReadOnlyList<string> Names
        {
            get { lock (_names) return _names.ToList(); }
        }

        protected override Task<string> ExecuteAsync(string name, Func<CancellationToken, Task<string>> invoke, StepOptions? stepOptions)
        {
            Ran(name);
            return options.StepOverrides.TryGetValue(name, out var value)
                ? Task.FromResult(SerializeResult(name, value))
                : InvokeAsync(name, invoke, stepOptions, token);
        }

        /// <summary>
        /// Sleeps return at once (virtual time). A signal or event wait takes a step override by its step name, else the
        /// payload <see cref="RunInlineOptions.Signals"/> or <see cref="RunInlineOptions.Events"/> gives its name; with
        /// neither it times out at once when it has a timeout, else the run fails naming the wait.
        /// </summary>
        protected override Task<string> WaitCoreAsync(WaitRequest wait)
        {
            Ran(wait.Step);
            if (wait.Kind == WaitKind.Sleep) return Task.FromResult(RedflowJson.Null);
            if (options.StepOverrides.TryGetValue(wait.Step, out var value)) return Task.FromResult(SerializeResult(wait.Step, value));
            var given = wait.Kind == WaitKind.Signal ? options.Signals : options.Events;
            if (given.TryGetValue(wait.Name!, out var payload)) return Task.FromResult(SerializeResult(wait.Step, payload));
            var what = wait.Kind == WaitKind.Signal ? "signal" : "event";
            if (wait.Relative is not null)
                throw new RedflowTimeoutException($"Step '{wait.Step}': no {what} '{wait.Name}' arrived before its timeout (inline run: none was given).");
            throw new RedflowException($"Step '{wait.Step}' waits for {what} '{wait.Name}' and has no timeout; an inline run needs it in " +
                $"RunInlineOptions.{(wait.Kind == WaitKind.Signal ? "Signals" : "Events")} or StepOverrides[\"{wait.Step}\"].");
        }

        protected override async Task<string> RunChildAsync(string name, string workflow, object? input, ChildWorkflowOptions childOptions)
        {
            Ran(name);
            return await RunChildInlineAsync(name, workflow, input).ConfigureAwait(false);
        }

        protected override async Task<string> EmitChildAsync(string name, string workflow, object? input, ChildWorkflowOptions childOptions)
        {
            Ran(name);
            var id = $"inline_child_{Interlocked.Increment(ref _children)}";
            try { await RunChildInlineAsync(name, workflow, input).ConfigureAwait(false); }
            catch (RedflowException) { } // an emitted child's failure is its own, not the parent's
            return id;
        }

        private async Task<string> RunChildInlineAsync(string name, string workflow, object? input)
        {
            if (options.ChildOverrides.TryGetValue(workflow, out var value)) return SerializeResult(name, value);
            var child = options.Children.FirstOrDefault(c => c.Name == workflow)
                ?? throw new UnknownWorkflowException(workflow, options.Children.Select(c => c.Name).ToList());
            var childId = $"inline_child_{Interlocked.Increment(ref _children)}";
            var result = await RedflowTesting.RunInlineAsync(child, input is JsonElement ? input : JsonSerializer.SerializeToElement(input, RedflowJson.Options),
                new RunInlineOptions { RunId = childId, Services = options.Services, CancellationToken = token }.WithChildrenOf(options)).ConfigureAwait(false);
            return result.Error switch
            {
                null => result.Output!.Value.GetRawText(),
                CanceledException => throw new CanceledException(childId, null),
                var error => throw new RunFailedException(childId, RunError.From(error)),
            };
        }

        private void Ran(string name)
        {
            lock (_names) _names.Add(name);
        }
    }

    private static RunInlineOptions WithChildrenOf(this RunInlineOptions target, RunInlineOptions source)
    {
        foreach (var child in source.Children) target.Children.Add(child);
        foreach (var (workflow, output) in source.ChildOverrides) target.ChildOverrides[workflow] = output;
        return target;
    }
}
