// Redflow quickstart: a worker and a client in one process against Redis ($REDIS_URL, default localhost).
using Redflow;

var url = Environment.GetEnvironmentVariable("REDIS_URL") ?? "redis://localhost:6379";

// A workflow is an async handler split into named steps. A completed step is recorded in Redis and
// never runs again for this run, even if the worker crashes and another one resumes it.
var sendWelcome = Workflows.Define<SignupInput, SendResult>("send-welcome-email", async ctx =>
{
    var user = await ctx.Step.RunAsync("fetch-user", ct => Users.FetchAsync(ctx.Input.UserId, ct));
    await ctx.Step.RunAsync("send-email", ct => Mailer.SendWelcomeAsync(user.Email, ct));
    return new SendResult(Sent: true);
}, new WorkflowOptions { Queue = "default", MaxConcurrency = 4, MaxAttempts = 3 });

await using var worker = await RedflowWorker.StartAsync(new StartWorkerOptions
{
    App = "quickstart",
    Url = url,
    Workflows = [sendWelcome],
});

await using var client = RedflowClient.Create(url);
var handle = await client.EmitWorkflowAsync(sendWelcome, new SignupInput("user_123"),
    new EmitOptions { IdempotencyKey = $"welcome:user_123:{Guid.NewGuid():N}" });
Console.WriteLine($"emitted {handle.RunId}");

var result = await handle.ResultAsync(TimeSpan.FromSeconds(30));
Console.WriteLine($"result: sent={result.Sent}");
foreach (var step in await client.GetRunStepsAsync(handle.RunId))
    Console.WriteLine($"  step {step.Name}: {step.Status} {step.Output?.GetRawText()}");

await worker.StopAsync();
return result.Sent ? 0 : 1;

public sealed record SignupInput(string UserId);
public sealed record SendResult(bool Sent);
public sealed record User(string Id, string Email);

internal static class Users
{
    public static Task<User> FetchAsync(string id, CancellationToken ct) => Task.FromResult(new User(id, $"{id}@example.com"));
}

internal static class Mailer
{
    public static Task SendWelcomeAsync(string email, CancellationToken ct) => Task.CompletedTask;
}
