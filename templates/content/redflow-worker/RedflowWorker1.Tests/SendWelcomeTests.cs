using Redflow;
using Xunit;

namespace RedflowWorker1.Tests;

/// <summary>The workflow run in-process: no Redis, no actor system.</summary>
public sealed class SendWelcomeTests
{
    [Fact]
    public async Task Sends_the_welcome_email()
    {
        var result = await RedflowTesting.RunInlineAsync(AppWorkflows.SendWelcome, new SignupInput("user_123"));
        Assert.True(result.Succeeded);
        Assert.Equal(new SendResult(true), result.Output);
        Assert.Equal(["fetch-user", "send-email"], result.Steps);
    }

    [Fact]
    public async Task A_step_can_be_replaced_by_a_value()
    {
        var result = await RedflowTesting.RunInlineAsync(AppWorkflows.SendWelcome, new SignupInput("user_123"),
            new RunInlineOptions { StepOverrides = { ["fetch-user"] = new User("user_123", "mock@test.com") } });
        Assert.True(result.Succeeded);
    }
}
