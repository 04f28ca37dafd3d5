using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Redflow;

/// <summary>A workflow: its name, its options and its handler.</summary>
public abstract class WorkflowDefinition
{
    private protected WorkflowDefinition(string name, WorkflowOptions? options)
    {
        Name = Names.Check(name, "workflow name");
        Options = options ?? new WorkflowOptions();
        Options.Validate(Name);
        foreach (var trigger in Options.Cron)
            CronSchedule.Parse(trigger, Name); // an invalid expression or time zone fails at definition
    }

    /// <summary>The workflow name.</summary>
    public string Name { get; }

    /// <summary>Its options.</summary>
    public WorkflowOptions Options { get; }

    /// <summary>The input type, or null when the input is untyped JSON.</summary>
    internal abstract Type? InputType { get; }

    /// <summary>Runs the handler on <paramref name="inputJson"/> and returns the output as JSON.</summary>
    internal abstract Task<string> ExecuteAsync(string inputJson, RunScope scope);

    /// <summary>Checks an input before it is emitted: throws <see cref="InputValidationException"/> when it does not fit.</summary>
    internal abstract void ValidateInput(string inputJson);

    /// <summary>Serializes a handler's output, turning a failure into a non-retriable error that names the type.</summary>
    private protected string SerializeOutput(object? output, Type declared)
    {
        try
        {
            return output is null ? RedflowJson.Null : RedflowJson.Serialize(output, declared == typeof(object) ? output.GetType() : declared);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            // ArgumentException: a NaN or infinite number (JSON has none).
            throw new NonRetriableException($"The output of workflow '{Name}' ({(output?.GetType() ?? declared).Name}) cannot be serialized to JSON: {ex.Message}", ex);
        }
    }
}

/// <summary>A workflow with a typed input and output.</summary>
/// <typeparam name="TInput">The input, deserialized from the run's JSON input.</typeparam>
/// <typeparam name="TOutput">The output, serialized to JSON.</typeparam>
public sealed class WorkflowDefinition<TInput, TOutput> : WorkflowDefinition
{
    private readonly Func<WorkflowHandlerContext<TInput>, IServiceProvider?, Task<TOutput>> _handler;

    internal WorkflowDefinition(string name, Func<WorkflowHandlerContext<TInput>, IServiceProvider?, Task<TOutput>> handler, WorkflowOptions? options)
        : base(name, options) => _handler = handler;

    internal override Type? InputType => typeof(TInput) == typeof(JsonElement) ? null : typeof(TInput);

    internal override async Task<string> ExecuteAsync(string inputJson, RunScope scope)
    {
        var input = ReadInput(inputJson);
        var output = await _handler(new WorkflowHandlerContext<TInput>(input, scope), scope.Services).ConfigureAwait(false);
        return SerializeOutput(output, typeof(TOutput));
    }

    internal override void ValidateInput(string inputJson) => ReadInput(inputJson);

    private TInput ReadInput(string inputJson)
    {
        var input = RedflowJson.DeserializeInput<TInput>(inputJson, $"The input of workflow '{Name}'");
        if (input is not null && Type.GetTypeCode(input.GetType()) == TypeCode.Object && input is not JsonElement)
        {
            var results = new List<ValidationResult>();
            if (!Validator.TryValidateObject(input, new ValidationContext(input), results, validateAllProperties: true))
                throw new InputValidationException($"The input of workflow '{Name}' is invalid: "
                    + string.Join("; ", results.Select(r => $"{string.Join(", ", r.MemberNames)}: {r.ErrorMessage}")));
        }
        return input;
    }
}

/// <summary>Marks a class-style workflow (<see cref="IWorkflow{TInput,TOutput}"/>) with its name and options.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class WorkflowAttribute(string name) : Attribute
{
    /// <summary>The workflow name.</summary>
    public string Name { get; } = name;

    /// <summary>The queue. Default <c>"default"</c>.</summary>
    public string Queue { get; set; } = "default";

    /// <summary>Runs of the workflow running at once, across all workers. Default 1.</summary>
    public int MaxConcurrency { get; set; } = 1;

    /// <summary>Attempts a run gets. Default 3.</summary>
    public int MaxAttempts { get; set; } = 3;
}

/// <summary>A class-style workflow, created per run (through the host's services when there are any).</summary>
/// <typeparam name="TInput">The input type.</typeparam>
/// <typeparam name="TOutput">The output type.</typeparam>
public interface IWorkflow<TInput, TOutput>
{
    /// <summary>The handler.</summary>
    Task<TOutput> RunAsync(WorkflowHandlerContext<TInput> ctx);
}

/// <summary>Defines workflows.</summary>
public static class Workflows
{
    /// <summary>Defines a workflow with a typed input and output.</summary>
    public static WorkflowDefinition<TInput, TOutput> Define<TInput, TOutput>(
        string name, Func<WorkflowHandlerContext<TInput>, Task<TOutput>> handler, WorkflowOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return new WorkflowDefinition<TInput, TOutput>(name, (ctx, _) => handler(ctx), options);
    }

    /// <summary>Defines a workflow whose input is a <see cref="JsonElement"/> and whose output is any JSON-serializable object (or null).</summary>
    public static WorkflowDefinition Define(string name, Func<WorkflowHandlerContext, Task<object?>> handler, WorkflowOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return new WorkflowDefinition<JsonElement, object?>(name,
            (ctx, _) => handler(new WorkflowHandlerContext(ctx.Input, ctx.Scope)), options);
    }

    /// <summary>A class-style workflow, named and configured by its <see cref="WorkflowAttribute"/>.</summary>
    public static WorkflowDefinition FromType<T>() where T : class => FromType(typeof(T), null);

    /// <summary>A class-style workflow named by its <see cref="WorkflowAttribute"/>, with <paramref name="options"/> in place of the attribute's.</summary>
    public static WorkflowDefinition FromType<T>(WorkflowOptions options) where T : class => FromType(typeof(T), options);

    /// <summary>Every class in <paramref name="assembly"/> marked with <see cref="WorkflowAttribute"/>.</summary>
    public static IReadOnlyList<WorkflowDefinition> FromAssembly(Assembly assembly) =>
        assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && t.GetCustomAttribute<WorkflowAttribute>() is not null)
            .OrderBy(t => t.FullName, StringComparer.Ordinal)
            .Select(t => FromType(t, null))
            .ToList();

    /// <summary>A class-style workflow of a runtime type.</summary>
    public static WorkflowDefinition FromType(Type type, WorkflowOptions? options)
    {
        ArgumentNullException.ThrowIfNull(type);
        var attribute = type.GetCustomAttribute<WorkflowAttribute>()
            ?? throw new ArgumentException($"{type.FullName} has no [Workflow] attribute: give it one with the workflow's name.", nameof(type));
        var contract = type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IWorkflow<,>))
            ?? throw new ArgumentException($"{type.FullName} does not implement IWorkflow<TInput, TOutput>.", nameof(type));
        options ??= new WorkflowOptions { Queue = attribute.Queue, MaxConcurrency = attribute.MaxConcurrency, MaxAttempts = attribute.MaxAttempts };
        var args = contract.GetGenericArguments();
        var method = typeof(Workflows).GetMethod(nameof(DefineClass), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(type, args[0], args[1]);
        try
        {
            return (WorkflowDefinition)method.Invoke(null, [attribute.Name, options])!;
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            throw ex.InnerException;
        }
    }

    private static WorkflowDefinition<TInput, TOutput> DefineClass<T, TInput, TOutput>(string name, WorkflowOptions options)
        where T : class, IWorkflow<TInput, TOutput> =>
        new(name, async (ctx, services) =>
        {
            // The instance and its DI scope belong to the attempt: disposed when the handler returns, or by the engine
            // when the run is suspended (the handler then never returns).
            var attempt = ctx.Scope.Resources;
            try
            {
                if (services is null) return await attempt.Add(Activator.CreateInstance<T>()).RunAsync(ctx).ConfigureAwait(false);
                var scope = attempt.Add(services.CreateAsyncScope());
                return await attempt.Add(ActivatorUtilities.CreateInstance<T>(scope.ServiceProvider)).RunAsync(ctx).ConfigureAwait(false);
            }
            finally
            {
                await attempt.DisposeAsync().ConfigureAwait(false);
            }
        }, options);
}
