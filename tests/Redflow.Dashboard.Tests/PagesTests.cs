using System.Net;
using static Redflow.Dashboard.Tests.TestWorkflows;

namespace Redflow.Dashboard.Tests;

/// <summary>The workflow, queues and workers pages; the runs search and filters; a running run's holder and timeline.</summary>
public sealed class PagesTests : DashboardTest
{
    private static readonly TaskCompletionSource Gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static readonly WorkflowDefinition Held = Workflows.Define("held", async ctx =>
    {
        await ctx.Step.RunAsync("first", ct => Task.FromResult(1));
        await ctx.Step.RunAsync("wait", async ct => { await Gate.Task.WaitAsync(ct); return 2; });
        return null;
    }, new WorkflowOptions { MaxConcurrency = 2, Queue = "held-q", Cron = [new CronTrigger("0 9 1 1 *") { Id = "berlin", Timezone = "Europe/Berlin" }] });

    [Fact]
    public async Task A_running_run_shows_its_holder_lease_and_current_step_and_the_workers_and_queues_pages_count_it()
    {
        await StartWorkerAsync("holder-app", Held);
        var handle = await Client.EmitWorkflowAsync("held", null);
        string html = "";
        await EventuallyAsync(async () => (html = await GetPageAsync($"/runs/{handle.RunId}")).Contains("its current step is <b>wait</b> (as of the last lease renewal); the last recorded step is <b>first</b>"), "the run's current step shown");
        Assert.Contains("on <b>holder-app</b> (node <code>", html);
        Assert.Matches("<tr><td>Lease until</td><td><time datetime=\"[^\"]+\" title=\"[^\"]+ UTC\">in \\d+ s</time></td></tr>", html);
        Assert.Contains("<div class=\"tl\" id=\"timeline\">", html);
        Assert.Contains("<span class=\"tl-label\" title=\"first\">first</span>", html);
        Assert.Contains("id=\"live\" data-interval=\"5\"", html); // a running run's page refreshes itself

        var workers = await GetPageAsync("/workers");
        Assert.Matches("<td>holder-app</td><td><code>[^<]+</code></td><td>held-q</td><td>4</td><td>1</td>", workers);
        Assert.Matches(@"<td>\d+\.\d+\.\d+[^<]*</td></tr>", workers); // the version the worker runs
        var queues = await GetPageAsync("/queues");
        Assert.Contains("<td><a href=\"/redflow/runs?queue=held-q\">held-q</a></td><td><a href=\"/redflow/workflows/held\">held</a></td><td>0</td><td>0</td><td>1</td><td>0</td>", queues);
        Gate.TrySetResult();
        await handle.ResultAsync(Generous);
        Assert.Contains("<tr><td>Status</td><td><span class=\"st succeeded\">Succeeded</span></td></tr>", await GetPageAsync($"/runs/{handle.RunId}"));
    }

    [Fact]
    public async Task The_workflow_page_shows_counts_success_rate_durations_and_cron_in_its_zone_and_utc()
    {
        await StartWorkerAsync("wf-app", Checkout, Held);
        for (var i = 0; i < 3; i++) await (await Client.EmitWorkflowAsync(Checkout, new Order($"ok{i}", 1))).ResultAsync(Generous);
        await Assert.ThrowsAsync<RunFailedException>(async () => await (await Client.EmitWorkflowAsync(Checkout, new Order("bad", -1))).ResultAsync(Generous));
        var html = await GetPageAsync("/workflows/checkout");
        Assert.Matches("<tr><td>last hour</td><td>4</td><td>3</td><td>1</td><td class=\"rate\">75 %</td><td>\\d+ ms</td><td>\\d+ ms</td></tr>", html);
        Assert.Matches("status=Failed\"><span class=\"st failed\">Failed</span></a><b>1</b>", html);
        Assert.Contains("<td>wf-app</td>", html);

        var held = await GetPageAsync("/workflows/held");
        var next = new DateTimeOffset(DateTimeOffset.UtcNow.Year + 1, 1, 1, 8, 0, 0, TimeSpan.Zero); // 09:00 in Berlin is 08:00 UTC in January
        if (DateTimeOffset.UtcNow < new DateTimeOffset(DateTimeOffset.UtcNow.Year, 1, 1, 8, 0, 0, TimeSpan.Zero)) next = next.AddYears(-1);
        Assert.Contains($"<span class=\"next\">{next:yyyy}-01-01 09:00:00 Europe/Berlin (UTC+01:00)</span> <span class=\"muted\">= {next:yyyy}-01-01 08:00:00 UTC</span>", held);
        await GetPageAsync("/workflows/no-such-workflow", HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Runs_are_searched_by_id_idempotency_key_and_parent_and_filtered_by_queue_and_window()
    {
        await StartWorkerAsync("search-app", Checkout, Audit, Parent, Child);
        var keyed = await Client.EmitWorkflowAsync(Checkout, new Order("k", 1), new EmitOptions { IdempotencyKey = "order-42" });
        var parent = await Client.EmitWorkflowAsync(Parent, new Order("p", 1));
        var childId = await parent.ResultAsync(Generous);
        var audit = await Client.EmitWorkflowAsync("audit", null);
        await keyed.ResultAsync(Generous);
        await audit.ResultAsync(Generous);

        Assert.Equal([keyed.RunId], RunIds(await GetPageAsync("/runs?q=order-42")));
        Assert.Equal([keyed.RunId], RunIds(await GetPageAsync($"/runs?q={keyed.RunId}")));
        var byParent = RunIds(await GetPageAsync($"/runs?q={parent.RunId}"));
        Assert.Equal([parent.RunId, childId], byParent);
        Assert.Contains($"<a href=\"/redflow/runs/{parent.RunId}\">{parent.RunId}</a></td>", await GetPageAsync("/runs?workflow=child"));
        Assert.Equal([audit.RunId], RunIds(await GetPageAsync("/runs?queue=audit-q")));
        Assert.Equal(4, RunIds(await GetPageAsync("/runs?window=15m")).Count);
        Assert.Empty(RunIds(await GetPageAsync("/runs?q=nothing-matches")));
    }
}
