using System.Text.Json;

namespace Redflow.Tests.Integration;

/// <summary>
/// Base of tests that run workers and a client in this process, on the shared Redis, under a prefix of their
/// own (so tests run in parallel). Workers started here are stopped when the test ends.
/// </summary>
public abstract class WorkerTest : IAsyncLifetime
{
    private readonly List<RedflowWorker> _workers = [];

    protected WorkerTest()
    {
        Prefix = TestEnv.NewPrefix();
        Client = RedflowClient.Create(new RedflowClientOptions { Url = TestEnv.Url, Prefix = Prefix });
    }

    protected string Prefix { get; }

    protected IRedflowClient Client { get; }

    protected static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    /// <summary>Starts a worker with fast test timings unless the caller overrides them.</summary>
    protected async Task<RedflowWorker> StartWorkerAsync(params WorkflowDefinition[] workflows) =>
        await StartWorkerAsync(new StartWorkerOptions { Workflows = workflows });

    protected async Task<RedflowWorker> StartWorkerAsync(StartWorkerOptions options)
    {
        var worker = await RedflowWorker.StartAsync(options with
        {
            Url = TestEnv.Url,
            Prefix = Prefix,
            Lease = options.Lease == new StartWorkerOptions().Lease ? TimeSpan.FromSeconds(2) : options.Lease,
            ReaperInterval = options.ReaperInterval == new StartWorkerOptions().ReaperInterval ? TimeSpan.FromMilliseconds(200) : options.ReaperInterval,
            BlmoveTimeout = options.BlmoveTimeout == new StartWorkerOptions().BlmoveTimeout ? TimeSpan.FromMilliseconds(200) : options.BlmoveTimeout,
            ShutdownTimeout = options.ShutdownTimeout == new StartWorkerOptions().ShutdownTimeout ? TimeSpan.FromMilliseconds(500) : options.ShutdownTimeout,
        });
        lock (_workers) _workers.Add(worker);
        return worker;
    }

    /// <summary>Waits until <paramref name="condition"/> holds, or fails after a generous deadline.</summary>
    protected static async Task EventuallyAsync(Func<Task<bool>> condition, string because, TimeSpan? deadline = null)
    {
        var until = DateTime.UtcNow + (deadline ?? Generous);
        while (!await condition())
        {
            if (DateTime.UtcNow > until) throw new Xunit.Sdk.XunitException($"Timed out waiting until {because}.");
            await Task.Delay(20);
        }
    }

    protected async Task<RunRecord> RunAsync(string runId) => (await Client.GetRunAsync(runId))!;

    protected static JsonElement Json(object? value) => JsonSerializer.SerializeToElement(value, RedflowJson.Options);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers) await worker.StopAsync();
        await Client.DisposeAsync();
    }
}
