using Microsoft.Playwright;
using static Redflow.Dashboard.Tests.TestWorkflows;

namespace Redflow.Dashboard.Tests;

/// <summary>
/// The dashboard driven in a real browser: Playwright with Debian's Chromium (/usr/bin/chromium; scripts/test.sh
/// installs it). Set REDFLOW_SCREENSHOTS to a folder to save a screenshot of each page there (docs/dashboard-*.png
/// come from that). Pages refresh every second here.
/// </summary>
public sealed class BrowserTests : DashboardTest
{
    protected override RedflowDashboardOptions DashboardOptions => new() { RefreshInterval = TimeSpan.FromSeconds(1) };

    private static readonly TaskCompletionSource Gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static readonly WorkflowDefinition Gated = Workflows.Define("gated", async ctx =>
    {
        await ctx.Step.RunAsync("prepare", ct => Task.FromResult(1));
        return await ctx.Step.RunAsync("wait-for-gate", async ct => { await Gate.Task.WaitAsync(ct); return new { released = true }; });
    }, new WorkflowOptions { MaxConcurrency = 2 });

    private static async Task<IBrowser> LaunchAsync(IPlaywright playwright, params string[] extra) =>
        await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync", .. extra],
        });

    private static async Task ScreenshotAsync(IPage page, string name)
    {
        if (Environment.GetEnvironmentVariable("REDFLOW_SCREENSHOTS") is { Length: > 0 } dir)
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(dir, $"dashboard-{name}.png"), FullPage = true });
    }

    private static async Task<IPage> NewPageAsync(IBrowser browser, ColorScheme scheme = ColorScheme.Light)
    {
        var context = await browser.NewContextAsync(new BrowserNewContextOptions { ColorScheme = scheme, ViewportSize = new ViewportSize { Width = 1280, Height = 800 } });
        return await context.NewPageAsync();
    }

    [Fact]
    public async Task Pages_list_filter_show_errors_and_act_in_a_browser()
    {
        await StartWorkerAsync("browser-app", Checkout, Parent, Child, Audit);
        var ok = await Client.EmitWorkflowAsync(Checkout, new Order("<script>alert(1)</script> Jürgen", 21));
        var failed = await Client.EmitWorkflowAsync(Checkout, new Order("bad", -1));
        var later = await Client.EmitWorkflowAsync(Checkout, new Order("later", 1), new EmitOptions { Delay = TimeSpan.FromHours(1) });
        var parent = await Client.EmitWorkflowAsync(Parent, new Order("p", 3));
        await ok.ResultAsync(Generous);
        await parent.ResultAsync(Generous);
        await (await Client.EmitWorkflowAsync("audit", new { batch = 7 })).ResultAsync(Generous);
        await Assert.ThrowsAsync<RunFailedException>(() => failed.ResultAsync(Generous));

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var page = await NewPageAsync(browser);
        var dialogs = 0;
        page.Dialog += (_, d) => { dialogs++; _ = d.DismissAsync(); };

        await page.GotoAsync(BaseUrl + "/");
        Assert.Contains("Queues", await page.InnerTextAsync("main"));
        await ScreenshotAsync(page, "overview");

        await page.GotoAsync(BaseUrl + "/runs");
        var runs = await page.InnerTextAsync("#runs");
        Assert.Contains(ok.RunId, runs);
        Assert.Contains(failed.RunId, runs);
        Assert.Contains(later.RunId, runs);
        await ScreenshotAsync(page, "runs");

        await page.SelectOptionAsync("select[name=status]", "Failed");
        await page.ClickAsync("#filter");
        var filtered = await page.InnerTextAsync("#runs");
        Assert.Contains(failed.RunId, filtered);
        Assert.DoesNotContain(ok.RunId, filtered);

        await page.ClickAsync($"text={failed.RunId}");
        Assert.Contains("card declined", await page.InnerTextAsync("#error"));
        await ScreenshotAsync(page, "run-failed");

        // Input is text: no script from it ran; JSON is formatted and collapsible.
        await page.GotoAsync($"{BaseUrl}/runs/{ok.RunId}");
        Assert.Contains("alert(1)</script> Jürgen", await page.InnerTextAsync("#input"));
        Assert.Equal(0, dialogs);
        Assert.Contains("charge", await page.InnerTextAsync("#timeline"));
        await page.ClickAsync("#input summary");
        Assert.False(await page.IsVisibleAsync("#input .k"));
        await page.ClickAsync("#input summary");
        Assert.True(await page.IsVisibleAsync("#input .k"));
        await page.GotoAsync($"{BaseUrl}/runs/{parent.RunId}");
        await ScreenshotAsync(page, "run");

        // Cancel and rerun behind a confirmation.
        await page.GotoAsync($"{BaseUrl}/runs/{later.RunId}");
        await page.ClickAsync("#cancel");
        await page.ClickAsync("#confirm");
        Assert.Contains("Canceled", await page.InnerTextAsync("main"));
        Assert.Equal(RunStatus.Canceled, (await later.GetStateAsync()).Status);
        await page.GotoAsync($"{BaseUrl}/runs/{ok.RunId}");
        await page.ClickAsync("#rerun");
        await page.ClickAsync("#confirm");
        var rerunId = new Uri(page.Url).Segments[^1];
        Assert.NotEqual(ok.RunId, rerunId);
        Assert.Equal(ok.RunId, (await Client.GetRunAsync(rerunId))!.RerunOf);

        await page.GotoAsync(BaseUrl + "/workflows");
        Assert.Contains("checkout", await page.InnerTextAsync("#workflows"));
        await ScreenshotAsync(page, "workflows");
        await page.ClickAsync("#workflows >> text=checkout");
        Assert.Contains("last hour", await page.InnerTextAsync("#stats"));
        await ScreenshotAsync(page, "workflow");
        await page.GotoAsync(BaseUrl + "/queues");
        Assert.Contains("audit-q", await page.InnerTextAsync("#queues"));
        await ScreenshotAsync(page, "queues");
        await page.GotoAsync(BaseUrl + "/workers");
        Assert.Contains("browser-app", await page.InnerTextAsync("#workers"));
        await ScreenshotAsync(page, "workers");
    }

    [Fact]
    public async Task Live_refresh_shows_a_run_move_from_running_to_succeeded_without_a_reload()
    {
        await StartWorkerAsync("live-app", Gated);
        var handle = await Client.EmitWorkflowAsync("gated", null);
        await EventuallyAsync(async () => (await Client.GetRunStepsAsync(handle.RunId)).Count == 1, "the run is in its second step");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var page = await NewPageAsync(browser);
        await page.GotoAsync($"{BaseUrl}/runs?workflow=gated");
        Assert.Contains("Running", await page.InnerTextAsync("#runs"));
        await page.EvaluateAsync("() => { window.scrollTo(0, 0); window.notReloaded = true; document.querySelector('input[name=q]').value = 'typed'; }");
        var runPage = await NewPageAsync(browser);
        await runPage.GotoAsync($"{BaseUrl}/runs/{handle.RunId}");
        Assert.Contains("prepare", await runPage.InnerTextAsync("#current")); // the step it is in shows once a renewal has recorded it
        await runPage.EvaluateAsync("() => { window.notReloaded = true; }");

        Gate.TrySetResult();
        await handle.ResultAsync(Generous);
        await page.WaitForFunctionAsync("() => document.querySelector('#runs').innerText.includes('Succeeded')", null, new PageWaitForFunctionOptions { Timeout = 30_000 });
        Assert.True(await page.EvaluateAsync<bool>("() => window.notReloaded === true"));
        Assert.Equal("typed", await page.InputValueAsync("input[name=q]")); // the filter form is kept
        Assert.Contains("workflow=gated", page.Url);
        await runPage.WaitForFunctionAsync("() => document.querySelector('#run-live').innerText.includes('Succeeded')", null, new PageWaitForFunctionOptions { Timeout = 30_000 });
        Assert.True(await runPage.EvaluateAsync<bool>("() => window.notReloaded === true"));
        Assert.Contains("released", await runPage.InnerTextAsync("#output"));
    }

    [Fact]
    public async Task Bulk_rerun_of_all_failed_runs_of_a_workflow_in_a_browser()
    {
        await StartWorkerAsync("bulk-browser-app", Checkout);
        var failed = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            var h = await Client.EmitWorkflowAsync(Checkout, new Order($"bad{i}", -1));
            await Assert.ThrowsAsync<RunFailedException>(() => h.ResultAsync(Generous));
            failed.Add(h.RunId);
        }
        await (await Client.EmitWorkflowAsync(Checkout, new Order("fine", 2))).ResultAsync(Generous);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var page = await NewPageAsync(browser);
        await page.GotoAsync($"{BaseUrl}/workflows/checkout");
        await page.ClickAsync("#rerun-all-failed");
        Assert.Contains("This will start 4 runs again", await page.InnerTextAsync("#count"));
        await page.ClickAsync("#confirm");
        Assert.Contains("Started again: 4 of 4", await page.InnerTextAsync("#result"));
        var reruns = (await Client.ListRunsAsync(new ListRunsParams { Workflow = "checkout", Limit = 100 })).Where(r => r.RerunOf is not null).ToList();
        Assert.Equal(failed.Order(), reruns.Select(r => r.RerunOf!).Order());

        // And on a selection from the runs list.
        await page.GotoAsync($"{BaseUrl}/runs?workflow=checkout&status=Failed");
        await page.CheckAsync($"input[name=id][value={failed[0]}]");
        await page.CheckAsync($"input[name=id][value={failed[1]}]");
        await page.ClickAsync("#rerun-selected");
        Assert.Contains("This will start 2 runs again", await page.InnerTextAsync("#count"));
    }

    [Fact]
    public async Task Signal_resume_and_cron_actions_in_a_browser()
    {
        var approval = Workflows.Define<Order, string>("browser-approval", async ctx =>
            "approved by " + await ctx.Step.WaitForSignalAsync<string>("approval", "approve"), new WorkflowOptions { MaxConcurrency = 5 });
        await StartWorkerAsync("actions-browser-app", approval, Checkout);
        var waiting = await Client.EmitWorkflowAsync("browser-approval", new Order("w", 1));
        var failed = await Client.EmitWorkflowAsync(Checkout, new Order("bad", -1));
        await Assert.ThrowsAsync<RunFailedException>(() => failed.ResultAsync(Generous));
        await EventuallyAsync(async () => (await Client.GetRunAsync(waiting.RunId))!.Status == RunStatus.Waiting, "the run waits on its signal");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var page = await NewPageAsync(browser);

        // A waiting run shows its wait; a signal sent from its page resumes it.
        await page.GotoAsync($"{BaseUrl}/runs/{waiting.RunId}");
        Assert.Contains("approve", await page.InnerTextAsync("#waits"));
        await ScreenshotAsync(page, "run-waiting");
        await page.ClickAsync("#signal");
        Assert.Equal("approve", await page.InputValueAsync("#signal-name"));
        await page.FillAsync("#signal-payload", "\"eve\"");
        await page.ClickAsync("#confirm");
        Assert.Equal("approved by eve", await waiting.ResultAsync<string>(Generous));

        // A failed run is resumed as the same run.
        await page.GotoAsync($"{BaseUrl}/runs/{failed.RunId}");
        await page.ClickAsync("#resume");
        await page.ClickAsync("#confirm");
        Assert.EndsWith(failed.RunId, page.Url);
        await EventuallyAsync(async () => (await Client.GetRunAsync(failed.RunId))!.Attempt > 1, "the resumed run ran another attempt");

        // A cron trigger is paused, resumed and triggered now from its workflow's page.
        await page.GotoAsync($"{BaseUrl}/workflows/checkout");
        await page.ClickAsync("#cron-pause-new-year");
        await page.ClickAsync("#confirm");
        Assert.True((await Client.GetWorkflowMetaAsync("checkout"))!.Cron.Single().Paused);
        await page.GotoAsync($"{BaseUrl}/workflows/checkout");
        await page.ClickAsync("#cron-resume-new-year");
        await page.ClickAsync("#confirm");
        Assert.False((await Client.GetWorkflowMetaAsync("checkout"))!.Cron.Single().Paused);
        await page.GotoAsync($"{BaseUrl}/workflows/checkout");
        await page.ClickAsync("#cron-trigger-new-year");
        await page.ClickAsync("#confirm");
        var triggered = new Uri(page.Url).Segments[^1];
        Assert.StartsWith("run_", triggered);
        Assert.Equal("checkout", (await Client.GetRunAsync(triggered))!.Workflow);
    }

    [Fact]
    public async Task Dark_mode_follows_the_browser()
    {
        await StartWorkerAsync("dark-app", Checkout);
        var run = await Client.EmitWorkflowAsync(Checkout, new Order("dark", 5));
        await run.ResultAsync(Generous);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        string Background(IPage p) => p.EvaluateAsync<string>("() => getComputedStyle(document.body).backgroundColor").GetAwaiter().GetResult();
        var light = await NewPageAsync(browser, ColorScheme.Light);
        await light.GotoAsync($"{BaseUrl}/runs/{run.RunId}");
        var dark = await NewPageAsync(browser, ColorScheme.Dark);
        await dark.GotoAsync($"{BaseUrl}/runs/{run.RunId}");
        Assert.Equal("rgb(245, 246, 248)", Background(light));
        Assert.Equal("rgb(15, 18, 22)", Background(dark));
        Assert.NotEqual(await light.EvalOnSelectorAsync<string>(".st", "e => getComputedStyle(e).color"), await dark.EvalOnSelectorAsync<string>(".st", "e => getComputedStyle(e).color"));
        await ScreenshotAsync(dark, "run-dark");
    }

    [Fact]
    public async Task A_rebinding_page_with_a_forged_host_is_refused()
    {
        var port = new Uri(BaseUrl).Port;
        using var playwright = await Playwright.CreateAsync();
        // The attacker's name resolves to 127.0.0.1, as DNS rebinding makes it: the browser sends Host: rebind.example.
        await using var browser = await LaunchAsync(playwright, "--host-resolver-rules=MAP rebind.example 127.0.0.1");
        var page = await NewPageAsync(browser);
        var response = await page.GotoAsync($"http://rebind.example:{port}/redflow/runs");
        Assert.Equal(403, response!.Status);
        Assert.Contains("DNS rebinding", await page.InnerTextAsync("body"));
        var fetched = await page.EvaluateAsync<int>($"async () => (await fetch('http://rebind.example:{port}/redflow/')).status");
        Assert.Equal(403, fetched);
        var local = await page.GotoAsync($"http://localhost:{port}/redflow/runs");
        Assert.Equal(200, local!.Status);
    }
}
