using System.ComponentModel.DataAnnotations;

namespace Redflow.Tests.Inline;

public sealed record SignupInput(string UserId);
public sealed record User(string Email);
public sealed record SendResult(bool Sent, string To);
public sealed record Ranged([property: Range(1, 10)] int Count);

[Workflow("class-style", MaxAttempts = 2)]
public sealed class ClassStyle : IWorkflow<SignupInput, string>
{
    public Task<string> RunAsync(WorkflowHandlerContext<SignupInput> ctx) => ctx.Step.RunAsync("upper", ct => Task.FromResult(ctx.Input.UserId.ToUpperInvariant()));
}

/// <summary>RedflowTesting.RunInlineAsync: no Redis, no actor system, steps as on a worker.</summary>
public sealed class InlineTests
{
    private static readonly WorkflowDefinition<SignupInput, SendResult> SendWelcome =
        Workflows.Define<SignupInput, SendResult>("send-welcome-email", async ctx =>
        {
            var user = await ctx.Step.RunAsync("fetch-user", ct => Task.FromResult(new User($"{ctx.Input.UserId}@example.com")));
            await ctx.Step.RunAsync("send-email", ct => Task.CompletedTask);
            return new SendResult(true, user.Email);
        });

    [Fact]
    public async Task Runs_a_workflow_and_reports_its_steps_in_order()
    {
        var result = await RedflowTesting.RunInlineAsync(SendWelcome, new SignupInput("test"));
        Assert.True(result.Succeeded);
        Assert.Equal(new SendResult(true, "test@example.com"), result.Output);
        Assert.Equal(["fetch-user", "send-email"], result.Steps);
        Assert.Null(result.Error);
    }

    [Fact]
    public async Task A_step_override_replaces_the_step_through_json()
    {
        var mocked = await RedflowTesting.RunInlineAsync(SendWelcome, new SignupInput("test"),
            new RunInlineOptions { StepOverrides = { ["fetch-user"] = new User("mock@test.com") } });
        Assert.Equal("mock@test.com", mocked.Output!.To);
        Assert.Equal(["fetch-user", "send-email"], mocked.Steps);
        // An anonymous object of the right shape works too; a wrong shape fails loudly, as a bad record would.
        var anonymous = await RedflowTesting.RunInlineAsync(SendWelcome, new SignupInput("t"),
            new RunInlineOptions { StepOverrides = { ["fetch-user"] = new { email = "anon@test.com" } } });
        Assert.Equal("anon@test.com", anonymous.Output!.To);
        var wrong = await RedflowTesting.RunInlineAsync(SendWelcome, new SignupInput("t"),
            new RunInlineOptions { StepOverrides = { ["fetch-user"] = 42 } });
        Assert.False(wrong.Succeeded);
        Assert.Contains("fetch-user", wrong.Error!.Message);
    }

    [Fact]
    public async Task Duplicate_step_names_are_an_error()
    {
        var twice = Workflows.Define<SignupInput, int>("twice", async ctx =>
        {
            await ctx.Step.RunAsync("same", ct => Task.FromResult(1));
            return await ctx.Step.RunAsync("same", ct => Task.FromResult(2));
        });
        var result = await RedflowTesting.RunInlineAsync(twice, new SignupInput("x"));
        Assert.False(result.Succeeded);
        Assert.Contains("'same' was already called", Assert.IsType<InvalidOperationException>(result.Error).Message);
    }

    [Fact]
    public async Task Step_timeout_applies()
    {
        var slow = Workflows.Define<SignupInput, int>("slow", async ctx =>
            await ctx.Step.RunAsync("wait", async ct => { await Task.Delay(TimeSpan.FromSeconds(30), ct); return 1; },
                new StepOptions { Timeout = TimeSpan.FromMilliseconds(50) }));
        var result = await RedflowTesting.RunInlineAsync(slow, new SignupInput("x"));
        Assert.IsType<RedflowTimeoutException>(result.Error);
    }

    [Fact]
    public async Task Cancellation_can_be_requested_and_the_handler_sees_the_reason()
    {
        StopReason seen = StopReason.None;
        var waits = Workflows.Define<SignupInput, int>("waits", async ctx =>
        {
            try { await Task.Delay(TimeSpan.FromSeconds(30), ctx.CancellationToken); }
            catch (OperationCanceledException) { seen = ctx.StopReason; throw; }
            return 1;
        });
        var result = await RedflowTesting.RunInlineAsync(waits, new SignupInput("x"), new RunInlineOptions { CancelAfter = TimeSpan.FromMilliseconds(50) });
        Assert.False(result.Succeeded);
        Assert.IsType<CanceledException>(result.Error);
        Assert.Equal(StopReason.CancelRequested, seen);
    }

    [Fact]
    public async Task Children_run_inline_or_from_their_override()
    {
        var child = Workflows.Define<SignupInput, int>("length", async ctx => ctx.Input.UserId.Length);
        var failing = Workflows.Define<SignupInput, int>("failing", async ctx => throw new NonRetriableException("nope"));
        var parent = Workflows.Define<SignupInput, string>("parent", async ctx =>
        {
            var n = await ctx.Step.RunWorkflowAsync<int>("measure", "length", ctx.Input);
            var id = await ctx.Step.EmitWorkflowAsync("fire", "length", ctx.Input);
            try { await ctx.Step.RunWorkflowAsync<int>("bad", "failing", ctx.Input); }
            catch (RunFailedException ex) { return $"{n} {id} {ex.Error.Message}"; }
            return "no";
        });
        var options = new RunInlineOptions { Children = { child, failing } };
        var result = await RedflowTesting.RunInlineAsync(parent, new SignupInput("abcd"), options);
        Assert.Equal("4 inline_child_2 nope", result.Output);
        Assert.Equal(["measure", "fire", "bad"], result.Steps);

        var overridden = await RedflowTesting.RunInlineAsync(parent, new SignupInput("abcd"),
            new RunInlineOptions { Children = { failing }, ChildOverrides = { ["length"] = 99 } });
        Assert.StartsWith("99 ", overridden.Output);

        var unknown = await RedflowTesting.RunInlineAsync(parent, new SignupInput("abcd"));
        Assert.IsType<UnknownWorkflowException>(unknown.Error);
    }

    [Fact]
    public async Task Input_is_validated_as_on_a_worker()
    {
        var typed = Workflows.Define<SignupInput, int>("typed", async ctx => 1);
        var missing = await RedflowTesting.RunInlineAsync(typed, new { other = 1 });
        Assert.Contains("user_id", Assert.IsType<InputValidationException>(missing.Error).Message);
        var ranged = Workflows.Define<Ranged, int>("ranged", async ctx => ctx.Input.Count);
        var outOfRange = await RedflowTesting.RunInlineAsync(ranged, new Ranged(50));
        Assert.Contains("Count", Assert.IsType<InputValidationException>(outOfRange.Error).Message);
    }

    [Fact]
    public async Task An_output_that_does_not_serialize_fails_as_it_would_on_a_worker()
    {
        var bad = Workflows.Define<SignupInput, object>("bad-output", async ctx => new { handle = new IntPtr(1), self = (object)typeof(string) });
        var result = await RedflowTesting.RunInlineAsync(bad, new SignupInput("x"));
        Assert.False(result.Succeeded);
        Assert.Contains("cannot be serialized", Assert.IsType<NonRetriableException>(result.Error).Message);
    }

    [Fact]
    public async Task NaN_in_a_result_or_output_fails_without_retry_and_a_functions_own_timeout_is_its_failure()
    {
        var nanStep = Workflows.Define<SignupInput, double>("nan-step", async ctx => await ctx.Step.RunAsync("nan", ct => Task.FromResult(double.NaN)));
        Assert.IsType<NonRetriableException>((await RedflowTesting.RunInlineAsync(nanStep, new SignupInput("x"))).Error);
        var nanOutput = Workflows.Define<SignupInput, double>("nan-output", async ctx => double.PositiveInfinity);
        Assert.IsType<NonRetriableException>((await RedflowTesting.RunInlineAsync(nanOutput, new SignupInput("x"))).Error);
        var ownTimeout = Workflows.Define<SignupInput, int>("own-timeout", async ctx =>
            await ctx.Step.RunAsync<int>("call", ct => throw new TimeoutException("the HTTP call timed out"), new StepOptions { Timeout = TimeSpan.FromSeconds(30) }));
        Assert.IsType<TimeoutException>((await RedflowTesting.RunInlineAsync(ownTimeout, new SignupInput("x"))).Error);
    }

    [Fact]
    public async Task Class_style_workflows_run_inline()
    {
        var definition = Workflows.FromType<ClassStyle>();
        Assert.Equal(2, definition.Options.MaxAttempts);
        var result = await RedflowTesting.RunInlineAsync(definition, new SignupInput("ada"));
        Assert.Equal("ADA", result.Output!.Value.GetString());
        Assert.Equal(["upper"], result.Steps);
    }

    private static readonly WorkflowDefinition<SignupInput, string> Approve =
        Workflows.Define<SignupInput, string>("approve", async ctx =>
        {
            await ctx.Step.SleepAsync("cool-off", TimeSpan.FromDays(3)); // virtual time: returns at once
            var by = await ctx.Step.WaitForSignalAsync<string>("approval", "approve");
            var paid = await ctx.Step.WaitForEventAsync<int>("paid", "payment.succeeded", new WaitOptions { Key = ctx.Input.UserId });
            return $"{by}:{paid}";
        });

    [Fact]
    public async Task Sleeps_return_at_once_and_waits_take_their_payload_from_the_options()
    {
        var options = new RunInlineOptions { Signals = { ["approve"] = "alice" }, Events = { ["payment.succeeded"] = 42 } };
        var started = DateTime.UtcNow;
        var result = await RedflowTesting.RunInlineAsync(Approve, new SignupInput("u1"), options);
        Assert.True(result.Succeeded, result.Error?.ToString());
        Assert.Equal("alice:42", result.Output);
        Assert.Equal(["cool-off", "approval", "paid"], result.Steps);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromMinutes(1));
    }

    [Fact]
    public async Task A_step_override_wins_over_the_signal_and_a_missing_payload_fails_naming_the_wait()
    {
        var options = new RunInlineOptions { Signals = { ["approve"] = "alice" }, StepOverrides = { ["approval"] = "bob", ["paid"] = 7 } };
        Assert.Equal("bob:7", (await RedflowTesting.RunInlineAsync(Approve, new SignupInput("u1"), options)).Output);
        var missing = await RedflowTesting.RunInlineAsync(Approve, new SignupInput("u1"), new RunInlineOptions { Signals = { ["approve"] = "alice" } });
        Assert.False(missing.Succeeded);
        Assert.Contains("'paid'", missing.Error!.Message);
        Assert.Contains("payment.succeeded", missing.Error.Message);
    }

    [Fact]
    public async Task A_wait_with_a_timeout_and_nothing_given_times_out_at_once()
    {
        var wf = Workflows.Define<SignupInput, string>("timeout", async ctx =>
        {
            try { return await ctx.Step.WaitForSignalAsync<string>("w", "never", new WaitOptions { Timeout = TimeSpan.FromHours(2) }); }
            catch (RedflowTimeoutException) { return "timed out"; }
        });
        Assert.Equal("timed out", (await RedflowTesting.RunInlineAsync(wf, new SignupInput("u"))).Output);
    }

    [Fact]
    public async Task Bad_wait_arguments_throw_argument_errors_naming_them()
    {
        var wf = Workflows.Define<SignupInput, string>("bad", async ctx =>
        {
            await ctx.Step.SleepAsync("nap", TimeSpan.FromSeconds(-1));
            return "no";
        });
        var error = Assert.IsType<ArgumentOutOfRangeException>((await RedflowTesting.RunInlineAsync(wf, new SignupInput("u"))).Error);
        Assert.Equal("duration", error.ParamName);
        var badTimeout = Workflows.Define<SignupInput, string>("bad-timeout", async ctx =>
            await ctx.Step.WaitForEventAsync<string>("e", "x", new WaitOptions { Timeout = TimeSpan.Zero }));
        Assert.IsType<ArgumentOutOfRangeException>((await RedflowTesting.RunInlineAsync(badTimeout, new SignupInput("u"))).Error);
        var keyedSignal = Workflows.Define<SignupInput, string>("keyed-signal", async ctx =>
            await ctx.Step.WaitForSignalAsync<string>("s", "x", new WaitOptions { Key = "k" }));
        Assert.IsType<ArgumentException>((await RedflowTesting.RunInlineAsync(keyedSignal, new SignupInput("u"))).Error);
    }

    [Fact]
    public async Task WhenAll_over_inline_steps_and_waits_finishes_with_every_result()
    {
        var wf = Workflows.Define<SignupInput, int>("fan", async ctx =>
        {
            var a = ctx.Step.RunAsync("a", _ => Task.FromResult(1));
            var b = ctx.Step.WaitForSignalAsync<int>("b", "b");
            var c = ctx.Step.SleepAsync("c", TimeSpan.FromMinutes(1));
            await Task.WhenAll(a, b, c);
            return await a + await b;
        });
        var result = await RedflowTesting.RunInlineAsync(wf, new SignupInput("u"), new RunInlineOptions { Signals = { ["b"] = 2 } });
        Assert.Equal(3, result.Output);
    }
}
