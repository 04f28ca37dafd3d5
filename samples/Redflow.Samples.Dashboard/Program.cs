// The Redflow dashboard as a standalone host on loopback:
//   REDIS_URL=redis://localhost:6379 dotnet run --project samples/Redflow.Samples.Dashboard -- [--prefix redflow] [--urls http://127.0.0.1:5080]
// then open http://127.0.0.1:5080/redflow
using Redflow;
using Redflow.Dashboard;

var builder = WebApplication.CreateSlimBuilder(args);
var url = Environment.GetEnvironmentVariable("REDIS_URL") ?? "redis://localhost:6379";
var prefix = builder.Configuration["prefix"] ?? "redflow";
builder.Services.AddSingleton(RedflowClient.Create(new RedflowClientOptions { Url = url, Prefix = prefix }));
builder.Services.AddRedflowDashboard();
builder.WebHost.UseUrls(builder.Configuration["urls"] ?? "http://127.0.0.1:5080");

var app = builder.Build();
app.MapRedflowDashboard("/redflow");
app.MapGet("/", () => Results.Redirect("/redflow"));
app.Run();
