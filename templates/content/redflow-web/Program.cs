// An ASP.NET Core app that emits Redflow runs and shows them in the dashboard (on /redflow, loopback only unless an
// authorization policy is given). It runs no worker: start one (dotnet new redflow-worker) to run the workflows.
// Settings: the "Redflow" section of appsettings.json.
using Redflow;
using Redflow.Dashboard;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddRedflowClient(builder.Configuration.GetSection("Redflow"));   // IRedflowClient, no actor system
builder.Services.AddRedflowDashboard();

var app = builder.Build();
app.MapRedflowDashboard("/redflow");

// POST /signups {"user_id":"u1"} emits a run of send-welcome-email (once per user: the idempotency key).
app.MapPost("/signups", async (SignupRequest signup, IRedflowClient redflow, CancellationToken ct) =>
{
    var handle = await redflow.EmitWorkflowAsync("send-welcome-email", new { user_id = signup.UserId },
        new EmitOptions { IdempotencyKey = $"welcome:{signup.UserId}" }, ct);
    return Results.Accepted($"/redflow/runs/{handle.RunId}", new { run_id = handle.RunId });
});

app.MapGet("/", () => Results.Redirect("/redflow"));
app.Run();

public sealed record SignupRequest(string UserId);
