// A Redflow worker: leases runs of its workflows from Redis and runs them. Settings: the "Redflow" section of
// appsettings.json (or Redflow__Url=... environment variables). Emit a run with the redflow tool:
//   redflow emit send-welcome-email --input '{"user_id":"u1"}' --wait
using Akka.Hosting;
using Microsoft.Extensions.Hosting;
using Redflow;
using RedflowWorker1;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddAkka("RedflowWorker1", (akka, sp) => akka
    .WithRedflowWorker(builder.Configuration.GetSection("Redflow"), options => options with { Workflows = AppWorkflows.All }));

await builder.Build().RunAsync();
