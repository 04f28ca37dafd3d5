using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Redflow;

/// <summary>
/// Registers a Redflow client in a host's services, for an app that emits and inspects runs without running a worker
/// (no actor system): <see cref="IRedflowClient"/> (a singleton, disposed with the container) and the
/// <see cref="RedflowClientOptions"/> it was made with.
/// </summary>
public static class RedflowServiceCollectionExtensions
{
    /// <summary>Registers a client for a Redis URL, under the default prefix.</summary>
    /// <exception cref="ArgumentException">The URL is malformed.</exception>
    public static IServiceCollection AddRedflowClient(this IServiceCollection services, string url) =>
        services.AddRedflowClient(new RedflowClientOptions { Url = url });

    /// <summary>Registers a client with these options, checked now (as <see cref="RedflowClient.Create(RedflowClientOptions)"/> checks them).</summary>
    /// <exception cref="ArgumentException">An option is invalid (the exception names it).</exception>
    public static IServiceCollection AddRedflowClient(this IServiceCollection services, RedflowClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        RedflowClient.Validate(options);
        return services.AddRedflowClient(_ => options);
    }

    /// <summary>
    /// Registers a client with options bound from a configuration section (for example
    /// <c>builder.Configuration.GetSection("Redflow")</c>: keys <c>Url</c>, <c>Prefix</c>, <c>IdempotencyWindow</c>,
    /// <c>MaxPayloadBytes</c>, <c>WaitForReplicas</c>, <c>WaitForReplicasTimeout</c>; durations as <c>hh:mm:ss</c>).
    /// Missing keys keep their defaults; the options are checked now.
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid (the exception names it).</exception>
    /// <exception cref="InvalidOperationException">A value cannot be converted to its option's type.</exception>
    public static IServiceCollection AddRedflowClient(this IServiceCollection services, IConfiguration configuration) =>
        services.AddRedflowClient(RedflowConfiguration.Bind<RedflowClientOptions>(configuration));

    /// <summary>
    /// Registers a client whose options come from the host's services (read when the client is first resolved, and
    /// checked then).
    /// </summary>
    public static IServiceCollection AddRedflowClient(this IServiceCollection services, Func<IServiceProvider, RedflowClientOptions> options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        services.TryAddSingleton(options);
        services.TryAddSingleton(sp => RedflowClient.Create(sp.GetRequiredService<RedflowClientOptions>()));
        return services;
    }
}

/// <summary>Binds Redflow's option records from configuration.</summary>
public static class RedflowConfiguration
{
    /// <summary>
    /// Options of type <typeparamref name="T"/> (<see cref="RedflowClientOptions"/>, <c>StartWorkerOptions</c>) bound
    /// from a configuration section: each key sets the property of that name (case-insensitive); missing keys keep
    /// their defaults. Keys for other options are ignored, so one <c>"Redflow"</c> section can hold the client's and
    /// the worker's settings. The options are not checked here: the client and the worker check them when they start.
    /// </summary>
    /// <exception cref="InvalidOperationException">A value cannot be converted to its option's type.</exception>
    public static T Bind<T>(IConfiguration configuration) where T : class, new()
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return configuration.Get<T>() ?? new T();
    }
}
