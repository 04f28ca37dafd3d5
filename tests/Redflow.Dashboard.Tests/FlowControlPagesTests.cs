namespace Redflow.Dashboard.Tests;

/// <summary>Flow control on the pages: a workflow's limits and the ready runs they hold back, the workflows list's column, a run's key and priority.</summary>
public sealed class FlowControlPagesTests : DashboardTest
{
    public sealed record Job(string Name);

    [Fact]
    public async Task The_workflow_page_shows_its_limits_and_the_runs_a_key_at_its_cap_holds_back()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var capped = Workflows.Define<Job, string>("tenant-sync", async ctx =>
        {
            if (ctx.Input.Name == "hold") await ctx.Step.RunAsync("hold", async ct => { await gate.Task.WaitAsync(ct); return 1; });
            return ctx.Input.Name;
        }, new WorkflowOptions { MaxConcurrency = 5, MaxConcurrencyPerKey = 1, RateLimit = new RateLimit(100, TimeSpan.FromMinutes(1)) });
        var debounced = Workflows.Define<Job, string>("profile-sync", async ctx => ctx.Input.Name,
            new WorkflowOptions { Debounce = new DebounceOptions(TimeSpan.FromSeconds(30)) { MaxWait = TimeSpan.FromMinutes(5) } });
        await StartWorkerAsync("flow-app", capped, debounced, TestWorkflows.Audit);

        // A key whose name needs escaping holds its one slot; three more of its runs wait behind the cap.
        const string key = "<t&1>";
        var holder = await Client.EmitWorkflowAsync(capped, new Job("hold"), new EmitOptions { Key = key });
        await EventuallyAsync(async () => (await Client.GetRunAsync(holder.RunId))!.Status == RunStatus.Running, "the key's first run holds its slot");
        var queued = new List<RunHandle<string>>();
        for (var i = 0; i < 3; i++) queued.Add(await Client.EmitWorkflowAsync(capped, new Job($"more{i}"), new EmitOptions { Key = key, Priority = 7 }));
        // Another key is not held back.
        Assert.Equal("other", await (await Client.EmitWorkflowAsync(capped, new Job("other"), new EmitOptions { Key = "tenant-b" })).ResultAsync(Generous));

        var html = "";
        await EventuallyAsync(async () => (html = await GetPageAsync("/workflows/tenant-sync")).Contains("data-held-back=\"3\""), "the workflow page counts the held-back runs");
        Assert.Contains("<b>3</b> ready runs are held back now", html);
        Assert.Contains("<tr><td><code>&lt;t&amp;1&gt;</code></td><td>3</td><td>1</td></tr>", html);
        Assert.DoesNotContain("<t&1>", html);
        Assert.Contains("<tr><td>Max concurrency per key</td><td>1</td></tr>", html);
        Assert.Contains("<tr><td>Rate limit</td><td>100 per 1 min <span class=\"muted\">", html);
        Assert.Contains("<tr><td>Debounce</td><td><span class=\"muted\">none</span></td></tr>", html);

        var profile = await GetPageAsync("/workflows/profile-sync");
        Assert.Contains("<tr><td>Debounce</td><td>30 s, at most 5 min after the first emit <span class=\"muted\">(per key)</span></td></tr>", profile);
        Assert.Contains("<tr><td>Max concurrency per key</td><td><span class=\"muted\">none</span></td></tr>", profile);
        Assert.Contains("data-held-back=\"0\"", profile);
        Assert.Contains("No ready run is held back now.", profile);

        // The workflows list: a compact column, with the held-back count linking to the workflow's page.
        var list = await GetPageAsync("/workflows");
        Assert.Contains("<th>Flow control</th>", list);
        Assert.Contains("<td>1 per key<br>100 per 1 min<br><a class=\"held\" href=\"/redflow/workflows/tenant-sync#held-back\"><span class=\"st waiting\">3 held back</span></a></td>", list);
        Assert.Contains("<td>debounce 30 s (max 5 min)</td>", list);
        Assert.Contains("<td><a href=\"/redflow/workflows/audit\">audit</a></td><td>audit-q</td><td>3</td><td>1</td><td><span class=\"muted\">none</span></td>", list);

        // A run's page: its key and priority; a run without them shows "-" and 0.
        var run = await GetPageAsync($"/runs/{queued[0].RunId}");
        Assert.Contains("<tr><td>Flow-control key</td><td><code>&lt;t&amp;1&gt;</code></td></tr><tr><td>Priority</td><td>7</td></tr>", run);
        var plain = await Client.EmitWorkflowAsync("audit", null);
        Assert.Contains("<tr><td>Flow-control key</td><td>-</td></tr><tr><td>Priority</td><td>0</td></tr>", await GetPageAsync($"/runs/{plain.RunId}"));

        // Released: the key's runs follow and nothing is held back any more.
        gate.SetResult();
        foreach (var q in queued) await q.ResultAsync(Generous);
        html = await GetPageAsync("/workflows/tenant-sync");
        Assert.Contains("data-held-back=\"0\"", html);
        Assert.Contains("<table id=\"held-back-keys\"><thead><tr><th>Key</th><th>Ready held back</th><th>Running</th></tr></thead><tbody><tr><td colspan=\"3\" class=\"muted\">none</td></tr>", html);
    }
}
