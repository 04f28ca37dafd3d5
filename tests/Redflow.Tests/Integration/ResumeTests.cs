using System.Collections.Concurrent;

namespace Redflow.Tests.Integration;

/// <summary>client.ResumeRunAsync: a failed run picked up where it stopped, as the same run.</summary>
public sealed class ResumeTests : WorkerTest
{
    private static readonly ConcurrentDictionary<string, int> Calls = new();
    private static volatile bool _thirdFails = true;

    private static readonly WorkflowDefinition<string, string> FourSteps = Workflows.Define<string, string>("resume-four", async ctx =>
    {
        var result = "";
        foreach (var step in new[] { "one", "two", "three", "four" })
            result += await ctx.Step.RunAsync(step, ct =>
            {
                Calls.AddOrUpdate($"{ctx.Input}/{step}", 1, (_, n) => n + 1);
                if (step == "three" && ctx.Input == "r1" && _thirdFails) throw new InvalidOperationException("three is broken");
                return Task.FromResult(step[..1]);
            });
        return result;
    }, new WorkflowOptions { MaxConcurrency = 5, MaxAttempts = 2, Retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(10) } });

    private static int CallsOf(string run, string step) => Calls.GetValueOrDefault($"{run}/{step}");

    [Fact]
    public async Task A_run_that_failed_at_its_third_step_resumes_from_that_step_as_the_same_run()
    {
        await StartWorkerAsync(FourSteps);
        var handle = await Client.EmitWorkflowAsync(FourSteps, "r1");
        await Assert.ThrowsAsync<RunFailedException>(() => handle.ResultAsync(Generous));
        var failed = await RunAsync(handle.RunId);
        Assert.Equal((2, 2), (failed.Attempt, failed.MaxAttempts)); // both attempts used
        Assert.Equal((1, 1, 2, 0), (CallsOf("r1", "one"), CallsOf("r1", "two"), CallsOf("r1", "three"), CallsOf("r1", "four")));

        _thirdFails = false; // "a fix is deployed"
        var resumed = await Client.ResumeRunAsync(handle.RunId);
        Assert.Equal(handle.RunId, resumed.RunId);
        Assert.Equal("ottf", await handle.ResultAsync(Generous));
        // Only the third step and what follows ran again.
        Assert.Equal((1, 1, 3, 1), (CallsOf("r1", "one"), CallsOf("r1", "two"), CallsOf("r1", "three"), CallsOf("r1", "four")));
        var run = await RunAsync(handle.RunId);
        Assert.Equal(RunStatus.Succeeded, run.Status);
        Assert.Null(run.Error);
        Assert.Equal((3, 4), (run.Attempt, run.MaxAttempts)); // a fresh budget of MaxAttempts after the two used
        Assert.Equal(failed.Resumes + 1, run.Resumes);
        var steps = await Client.GetRunStepsAsync(handle.RunId);
        Assert.Equal(["one", "two", "three", "four"], steps.Select(s => s.Name));
        Assert.All(steps, s => Assert.Equal(RunStatus.Succeeded, s.Status));
        Assert.Equal([1, 1, 3, 3], steps.Select(s => s.Attempt));

        // A run that is not failed or canceled is left as it is; an unknown run throws.
        await Client.ResumeRunAsync(handle.RunId);
        Assert.Equal(RunStatus.Succeeded, (await RunAsync(handle.RunId)).Status);
        await Assert.ThrowsAsync<RedflowException>(() => Client.ResumeRunAsync("run_nope"));
    }

    [Fact]
    public async Task A_canceled_run_resumes_and_a_repeat_call_changes_nothing()
    {
        await StartWorkerAsync(FourSteps);
        var later = await Client.EmitWorkflowAsync("resume-four", "r2", new EmitOptions { Delay = TimeSpan.FromHours(1), IdempotencyKey = "resume-key" });
        Assert.True(await Client.CancelRunAsync(later.RunId, "oops"));
        await Client.ResumeRunAsync(later.RunId);
        await Client.ResumeRunAsync(later.RunId); // repeat: already queued (or further)
        Assert.Equal("ottf", (await later.ResultAsync(Generous)).GetString());
        var run = await RunAsync(later.RunId);
        Assert.Null(run.CancelReason);
        Assert.Equal(1, CallsOf("r2", "one"));
        // The idempotency key still names the run.
        Assert.Equal(later.RunId, (await Client.EmitWorkflowAsync("resume-four", "r2", new EmitOptions { IdempotencyKey = "resume-key" })).RunId);
    }
}
