using System.Diagnostics;
using Xunit.Abstractions;
using static Redflow.Dashboard.Tests.TestWorkflows;

namespace Redflow.Dashboard.Tests;

/// <summary>
/// A measurement, not a check: seeds many runs, then times pages of 50 runs over HTTP and prints the figures. It
/// asserts nothing about time (machines differ); it is in the Slow category, which scripts/test.sh leaves out. Run it
/// with scripts/dashboard-timing.sh (DASHBOARD_TIMING_RUNS sets how many runs are seeded: 20,000 from the script, 2,000 when a plain `dotnet test` runs it).
/// </summary>
public sealed class PageTiming(ITestOutputHelper output) : DashboardTest
{
    [Fact]
    [Trait("Category", "Slow")]
    public async Task Time_a_page_of_50_runs_with_many_runs_in_Redis()
    {
        var count = int.TryParse(Environment.GetEnvironmentVariable("DASHBOARD_TIMING_RUNS"), out var n) ? n : 2_000;
        await StartWorkerAsync("timing-app", Checkout);
        var seeding = Stopwatch.StartNew();
        var next = 0;
        await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) is var i && i <= count)
                await Client.EmitWorkflowAsync(Checkout, new Order($"o{i}", i), new EmitOptions { Delay = TimeSpan.FromHours(1) });
        }));
        output.WriteLine($"seeded {count:N0} runs in {seeding.Elapsed.TotalSeconds:0.0} s");

        var some = (await Client.ListRunsAsync(new ListRunsParams { Limit = 1, Offset = count / 2 }))[0].Id;
        foreach (var path in new[]
                 {
                     "/runs", "/runs?workflow=checkout&offset=5000", "/runs?status=Scheduled&offset=5000", "/runs?window=1h",
                     $"/runs?q={some}", "/runs?queue=default", $"/runs/{some}", "/", "/workflows", "/workflows/checkout", "/queues", "/workers",
                 })
        {
            var first = await TimeAsync(path);
            var times = new List<double>();
            for (var i = 0; i < 30; i++) times.Add(await TimeAsync(path));
            times.Sort();
            output.WriteLine($"{path,-40} cold {first,6:0.0} ms  median {times[times.Count / 2],6:0.0} ms  p90 {times[(int)(times.Count * 0.9)],6:0.0} ms  max {times[^1],6:0.0} ms");
        }
        Assert.Equal(50, RunIds(await GetPageAsync("/runs")).Count);
    }

    private async Task<double> TimeAsync(string path)
    {
        var watch = Stopwatch.StartNew();
        var html = await GetPageAsync(path);
        watch.Stop();
        Assert.NotEmpty(html);
        return watch.Elapsed.TotalMilliseconds;
    }
}
