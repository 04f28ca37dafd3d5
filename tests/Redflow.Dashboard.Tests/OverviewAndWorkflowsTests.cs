using System.Net;
using System.Text.RegularExpressions;
using static Redflow.Dashboard.Tests.TestWorkflows;

namespace Redflow.Dashboard.Tests;

/// <summary>The overview (queues, statuses, workers, counters, throughput chart) and the workflows page.</summary>
public sealed class OverviewAndWorkflowsTests : DashboardTest
{
    [Fact]
    public async Task Overview_shows_queues_run_counts_workers_counters_and_the_throughput_chart()
    {
        await StartWorkerAsync("overview-app", Checkout, Audit);
        await (await Client.EmitWorkflowAsync(Checkout, new Order("a", 1))).ResultAsync(Generous);
        await (await Client.EmitWorkflowAsync(Checkout, new Order("b", 2))).ResultAsync(Generous);
        await Assert.ThrowsAsync<RunFailedException>(async () => await (await Client.EmitWorkflowAsync(Checkout, new Order("c", -1))).ResultAsync(Generous));
        await Client.EmitWorkflowAsync(Checkout, new Order("d", 1), new EmitOptions { Delay = TimeSpan.FromHours(1) });

        var html = await GetPageAsync("/");
        // Queues: default has the one scheduled run; the audit queue is served by the worker.
        Assert.Contains("<tr><td>default</td><td>0</td><td>1</td><td>0</td></tr>", html);
        Assert.Contains("<td>audit-q</td>", html);
        // Runs per status, each a link to the filtered runs page.
        Assert.Matches(new Regex("status=Succeeded\"><span class=\"st succeeded\">Succeeded</span></a><b>2</b>"), html);
        Assert.Matches(new Regex("status=Failed\"><span class=\"st failed\">Failed</span></a><b>1</b>"), html);
        Assert.Matches(new Regex("status=Scheduled\"><span class=\"st scheduled\">Scheduled</span></a><b>1</b>"), html);
        // The live worker and the engine counters.
        Assert.Matches(new Regex("<td>overview-app</td><td>[^<]+</td><td>(default, audit-q|audit-q, default)</td><td>4</td>"), html);
        Assert.Contains("<tr><td>succeeded</td><td>2</td></tr>", html);
        Assert.Contains("<tr><td>failed</td><td>1</td></tr>", html);
        // Throughput: an inline SVG with one bar group per minute; the finished runs are all in the last minutes.
        Assert.Contains("<svg id=\"throughput\"", html);
        var bars = Regex.Matches(html, "data-succeeded=\"(\\d+)\" data-failed=\"(\\d+)\"");
        Assert.Equal(30, bars.Count);
        Assert.Equal(2, bars.Sum(m => int.Parse(m.Groups[1].Value)));
        Assert.Equal(1, bars.Sum(m => int.Parse(m.Groups[2].Value)));
        Assert.DoesNotContain("<script src", html); // no external assets: the one script is the inline live refresh
        Assert.DoesNotContain("<link", html);
    }

    [Fact]
    public async Task Workflows_page_shows_options_cron_with_next_fire_time_workers_and_counts()
    {
        await StartWorkerAsync("workflows-app", Checkout, Audit);
        await (await Client.EmitWorkflowAsync(Checkout, new Order("a", 1))).ResultAsync(Generous);
        await (await Client.EmitWorkflowAsync("audit", null)).ResultAsync(Generous);

        var html = await GetPageAsync("/workflows");
        var nextNewYear = new DateTimeOffset(DateTimeOffset.UtcNow.Year + 1, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Assert.Contains("<td><a href=\"/redflow/workflows/checkout\">checkout</a></td><td>default</td><td>5</td><td>2</td>", html);
        Assert.Contains($"<code>0 0 1 1 *</code> UTC → <span class=\"next\">{nextNewYear:yyyy-MM-dd HH:mm:ss} UTC</span>", html);
        Assert.Contains("<td><a href=\"/redflow/workflows/audit\">audit</a></td><td>audit-q</td><td>3</td><td>1</td>", html);
        Assert.Contains("workflows-app (", html);
        Assert.Contains("<span class=\"st succeeded\">Succeeded</span> 1</a>", html);
    }

    [Fact]
    public async Task Pages_answer_404_for_an_unknown_run_and_400_for_an_unfit_name()
    {
        var missing = await GetPageAsync("/runs/run_does_not_exist", HttpStatusCode.NotFound);
        Assert.Contains("run_does_not_exist", missing);
        var bad = await GetPageAsync("/runs?workflow=" + Uri.EscapeDataString("a{b}"), HttpStatusCode.BadRequest);
        Assert.Contains("key hash tag", bad);
    }
}
