using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Redflow.Tests.Integration;

/// <summary>Spans and measurements, read with in-memory listeners.</summary>
public sealed class TelemetryTests : WorkerTest
{
    private static readonly ActivitySource TestSource = new("Redflow.Tests");

    [Fact]
    public async Task One_trace_goes_from_the_emit_through_the_runs_steps_and_children()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is RedflowTelemetry.Name or "Redflow.Tests",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        var measurements = new ConcurrentQueue<(string Instrument, double Value, string? Workflow)>();
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, l) => { if (instrument.Meter.Name == RedflowTelemetry.Name) l.EnableMeasurementEvents(instrument); },
        };
        meters.SetMeasurementEventCallback<long>((i, v, tags, _) => measurements.Enqueue((i.Name, v, Workflow(tags))));
        meters.SetMeasurementEventCallback<double>((i, v, tags, _) => measurements.Enqueue((i.Name, v, Workflow(tags))));
        meters.Start();

        var child = Workflows.Define<Order, int>("traced-child", async ctx => ctx.Input.Amount + 1, new WorkflowOptions { MaxConcurrency = 5 });
        var parent = Workflows.Define<Order, int>("traced-parent", async ctx =>
        {
            var a = await ctx.Step.RunAsync("first", ct => Task.FromResult(Activity.Current?.OperationName));
            Assert.Equal("redflow.step", a); // user code inside a step runs under the step's span
            return await ctx.Step.RunWorkflowAsync<int>("child", "traced-child", ctx.Input);
        }, new WorkflowOptions { MaxConcurrency = 5 });
        await StartWorkerAsync(parent, child);

        RunHandle<int> handle;
        ActivityTraceId trace;
        using (var root = TestSource.StartActivity("checkout-request"))
        {
            trace = root!.TraceId;
            handle = await Client.EmitWorkflowAsync(parent, new Order("t", 41));
        }
        Assert.Equal(42, await handle.ResultAsync(Generous));

        // The parent's run (suspended and replayed, or not at all when the child finished before it waited) and the child's.
        await EventuallyAsync(() => Task.FromResult(
                spans.Any(s => s.TraceId == trace && s.OperationName == "redflow.run" && (string?)s.GetTagItem("redflow.workflow") == "traced-child")
                && spans.Any(s => s.TraceId == trace && s.OperationName == "redflow.run" && (string?)s.GetTagItem("redflow.run_id") == handle.RunId
                    && (string?)s.GetTagItem("redflow.outcome") == "complete")),
            "the parent's and the child's runs are traced");
        var mine = spans.Where(s => s.TraceId == trace).ToList();
        Assert.Contains(mine, s => s.OperationName == "redflow.emit" && (string?)s.GetTagItem("redflow.workflow") == "traced-child");
        Assert.Contains(mine, s => s.OperationName == "redflow.step" && (string?)s.GetTagItem("redflow.step") == "first");
        Assert.Contains(mine, s => s.OperationName == "redflow.child.wait");
        var runs = mine.Where(s => s.OperationName == "redflow.run").ToList();
        Assert.Contains(runs, s => (string?)s.GetTagItem("redflow.workflow") == "traced-child");
        var parentRun = runs.First(s => (string?)s.GetTagItem("redflow.run_id") == handle.RunId);
        Assert.Equal("default", parentRun.GetTagItem("redflow.queue"));
        Assert.Equal(1, parentRun.GetTagItem("redflow.attempt"));
        Assert.Equal(ActivityKind.Consumer, parentRun.Kind);

        await EventuallyAsync(() => Task.FromResult(measurements.Any(m => m.Instrument == "redflow.runs.succeeded" && m.Workflow == "traced-parent")), "success is counted");
        Assert.Contains(measurements, m => m.Instrument == "redflow.runs.started" && m.Workflow == "traced-child");
        Assert.Contains(measurements, m => m.Instrument == "redflow.step.duration" && m.Workflow == "traced-parent" && m.Value >= 0);
        Assert.Contains(measurements, m => m.Instrument == "redflow.run.duration" && m.Workflow == "traced-child");
    }

    private static string? Workflow(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
            if (tag.Key == "redflow.workflow") return tag.Value as string;
        return null;
    }

    [Fact]
    public async Task Logs_written_inside_a_handler_and_a_step_carry_the_run_and_step_in_their_scope()
    {
        var provider = new ScopeCapture();
        using var factory = Microsoft.Extensions.Logging.LoggerFactory.Create(b => b.AddProvider(provider));
        var log = factory.CreateLogger("handler");
        var workflow = Workflows.Define<Order, int>("scoped", async ctx =>
        {
            Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(log, "in handler");
            return await ctx.Step.RunAsync("s", ct =>
            {
                Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(log, "in step");
                return Task.FromResult(1);
            });
        }, new WorkflowOptions { MaxConcurrency = 5 });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [workflow], LoggerFactory = factory });
        var handle = await Client.EmitWorkflowAsync(workflow, new Order("x", 1));
        await handle.ResultAsync(Generous);
        var handler = Assert.Single(provider.Entries, e => e.Message == "in handler");
        Assert.Equal(handle.RunId, handler.Scope["RunId"]);
        Assert.Equal("scoped", handler.Scope["Workflow"]);
        var step = Assert.Single(provider.Entries, e => e.Message == "in step");
        Assert.Equal(("s", handle.RunId), (step.Scope["Step"], step.Scope["RunId"]));
    }

    /// <summary>Records each log entry with the key/value pairs of the scopes around it.</summary>
    private sealed class ScopeCapture : Microsoft.Extensions.Logging.ILoggerProvider, Microsoft.Extensions.Logging.ISupportExternalScope
    {
        private Microsoft.Extensions.Logging.IExternalScopeProvider _scopes = new Microsoft.Extensions.Logging.LoggerExternalScopeProvider();
        public ConcurrentQueue<(string Message, Dictionary<string, object?> Scope)> Entries { get; } = new();
        public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => new Logger(this);
        public void SetScopeProvider(Microsoft.Extensions.Logging.IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;
        public void Dispose() { }

        private sealed class Logger(ScopeCapture owner) : Microsoft.Extensions.Logging.ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => owner._scopes.Push(state);
            public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;
            public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var scope = new Dictionary<string, object?>();
                owner._scopes.ForEachScope((s, d) =>
                {
                    if (s is IEnumerable<KeyValuePair<string, object>> pairs)
                        foreach (var (k, v) in pairs) d[k] = v;
                }, scope);
                owner.Entries.Enqueue((formatter(state, exception), scope));
            }
        }
    }
}
