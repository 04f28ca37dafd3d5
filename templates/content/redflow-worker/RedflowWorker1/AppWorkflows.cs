using Redflow;

namespace RedflowWorker1;

public sealed record SignupInput(string UserId);

public sealed record SendResult(bool Sent);

public sealed record User(string Id, string Email);

/// <summary>The workflows this worker runs. A completed step is recorded in Redis and never runs again for its run.</summary>
public static class AppWorkflows
{
    public static readonly WorkflowDefinition<SignupInput, SendResult> SendWelcome =
        Workflows.Define<SignupInput, SendResult>("send-welcome-email", async ctx =>
        {
            var user = await ctx.Step.RunAsync("fetch-user", ct => FetchUserAsync(ctx.Input.UserId, ct));
            await ctx.Step.RunAsync("send-email", ct => SendWelcomeAsync(user.Email, ct));
            return new SendResult(Sent: true);
        }, new WorkflowOptions { Queue = "default", MaxConcurrency = 4, MaxAttempts = 3 });

    public static IReadOnlyList<WorkflowDefinition> All => [SendWelcome];

    private static Task<User> FetchUserAsync(string id, CancellationToken ct) => Task.FromResult(new User(id, $"{id}@example.com"));

    private static Task SendWelcomeAsync(string email, CancellationToken ct) => Task.CompletedTask;
}
