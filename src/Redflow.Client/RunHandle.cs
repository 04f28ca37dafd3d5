using System.Text.Json;

namespace Redflow;

/// <summary>A run, by id: wait for its result or read its state.</summary>
public class RunHandle
{
    private protected readonly RedisRedflowClient Client;

    internal RunHandle(RedisRedflowClient client, string runId)
    {
        Client = client;
        RunId = runId;
    }

    /// <summary>The run id.</summary>
    public string RunId { get; }

    /// <summary>
    /// Waits for the run's output. Throws <see cref="RunFailedException"/> for a failed run,
    /// <see cref="CanceledException"/> for a canceled one and <see cref="RedflowTimeoutException"/> when
    /// <paramref name="timeout"/> passes first. Woken by the run's completion, not by polling.
    /// </summary>
    public Task<JsonElement> ResultAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        Client.WaitForResultAsync(RunId, timeout, cancellationToken);

    /// <summary>Waits for the run's output, deserialized to <typeparamref name="T"/>.</summary>
    public async Task<T> ResultAsync<T>(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var output = await Client.WaitForResultAsync(RunId, timeout, cancellationToken).ConfigureAwait(false);
        return output.Deserialize<T>(RedflowJson.Options)!;
    }

    /// <summary>The run's status, output and error now.</summary>
    public Task<RunState> GetStateAsync(CancellationToken cancellationToken = default) => Client.GetStateAsync(RunId, cancellationToken);

    /// <inheritdoc />
    public override string ToString() => RunId;
}

/// <summary>A run of a typed workflow.</summary>
/// <typeparam name="TOutput">The workflow's output type.</typeparam>
public sealed class RunHandle<TOutput> : RunHandle
{
    internal RunHandle(RedisRedflowClient client, string runId) : base(client, runId) { }

    /// <summary>Waits for the run's output, typed.</summary>
    public new Task<TOutput> ResultAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ResultAsync<TOutput>(timeout, cancellationToken);
}
