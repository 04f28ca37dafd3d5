namespace Redflow.Dashboard.Tests;

public sealed record Order(string Id, int Amount);

/// <summary>The workflows the dashboard tests seed runs with.</summary>
internal static class TestWorkflows
{
    /// <summary>Two timed steps; a negative amount fails for good with a message that repeats the order id.</summary>
    public static readonly WorkflowDefinition<Order, int> Checkout = Workflows.Define<Order, int>("checkout", async ctx =>
    {
        if (ctx.Input.Amount < 0) throw new NonRetriableException($"card declined for {ctx.Input.Id}");
        var reserved = await ctx.Step.RunAsync("reserve", async ct =>
        {
            await Task.Delay(25, ct);
            return ctx.Input.Amount;
        });
        return await ctx.Step.RunAsync("charge", ct => Task.FromResult(reserved * 2));
    }, new WorkflowOptions
    {
        MaxConcurrency = 5,
        MaxAttempts = 2,
        Cron = [new CronTrigger("0 0 1 1 *") { Id = "new-year" }], // fires on 1 January only: never during a test
    });

    /// <summary>Untyped, no steps.</summary>
    public static readonly WorkflowDefinition Audit = Workflows.Define("audit", ctx => Task.FromResult<object?>(new { ok = true }),
        new WorkflowOptions { Queue = "audit-q", MaxConcurrency = 3, MaxAttempts = 1 });

    /// <summary>Emits a <see cref="Child"/> run from a step and returns its id.</summary>
    public static readonly WorkflowDefinition<Order, string> Parent = Workflows.Define<Order, string>("parent", async ctx =>
        await ctx.Step.EmitWorkflowAsync("emit-child", "child", new { id = ctx.Input.Id }),
        new WorkflowOptions { MaxConcurrency = 5 });

    /// <summary>Returns its input.</summary>
    public static readonly WorkflowDefinition Child = Workflows.Define("child", ctx => Task.FromResult<object?>(ctx.Input),
        new WorkflowOptions { MaxConcurrency = 5 });
}
