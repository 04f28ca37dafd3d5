using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;

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
}
