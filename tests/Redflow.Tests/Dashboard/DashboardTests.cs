using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Redflow.Dashboard;
using Redflow.Tests.Integration;

namespace Redflow.Tests.Dashboard;

/// <summary>
/// The dashboard on Kestrel at 127.0.0.1 over the real Redis, driven in a real browser: Playwright with Debian's
/// Chromium (/usr/bin/chromium; scripts/test.sh installs it). Set REDFLOW_SCREENSHOTS to a folder to save a
/// screenshot of each page there (docs/dashboard-*.png come from that).
/// </summary>
public sealed class DashboardTests : WorkerTest
{
    private static readonly WorkflowDefinition<Order, int> Checkout = Workflows.Define<Order, int>("checkout", async ctx =>
    {
        if (ctx.Input.Amount < 0) throw new NonRetriableException("card declined");
        var a = await ctx.Step.RunAsync("reserve", ct => Task.FromResult(ctx.Input.Amount));
        return await ctx.Step.RunAsync("charge", ct => Task.FromResult(a * 2));
    }, new WorkflowOptions { MaxConcurrency = 5, MaxAttempts = 1 });

    private async Task<(WebApplication App, string Url)> StartDashboardAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddSingleton(RedflowClient.Create(new RedflowClientOptions { Url = TestEnv.Url, Prefix = Prefix }));
        builder.Services.AddRedflowDashboard();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapRedflowDashboard("/redflow");
        await app.StartAsync();
        return (app, app.Urls.First() + "/redflow");
    }

    private static async Task<IBrowser> LaunchAsync(IPlaywright playwright) =>
        await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
        });

    private static async Task ScreenshotAsync(IPage page, string name)
    {
        if (Environment.GetEnvironmentVariable("REDFLOW_SCREENSHOTS") is { Length: > 0 } dir)
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(dir, $"dashboard-{name}.png"), FullPage = true });
    }

    [Fact]
    public async Task The_dashboard_lists_filters_shows_errors_and_cancels_in_a_browser()
    {
        await StartWorkerAsync(Checkout);
        var ok = await Client.EmitWorkflowAsync(Checkout, new Order("<script>alert(1)</script>", 21));
        var failed = await Client.EmitWorkflowAsync(Checkout, new Order("bad", -1));
        var later = await Client.EmitWorkflowAsync(Checkout, new Order("later", 1), new EmitOptions { Delay = TimeSpan.FromHours(1) });
        await ok.ResultAsync(Generous);
        await Assert.ThrowsAsync<RunFailedException>(() => failed.ResultAsync(Generous));

        var (app, url) = await StartDashboardAsync();
        await using var _ = app;
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var page = await browser.NewPageAsync();
        var dialogs = 0;
        page.Dialog += (_, d) => { dialogs++; _ = d.DismissAsync(); };

        await page.GotoAsync(url + "/");
        Assert.Contains("Queues", await page.InnerTextAsync("main"));
        await ScreenshotAsync(page, "overview");

        // The runs page lists the emitted runs, newest first.
        await page.GotoAsync(url + "/runs");
        var runs = await page.InnerTextAsync("table");
        Assert.Contains(ok.RunId, runs);
        Assert.Contains(failed.RunId, runs);
        Assert.Contains(later.RunId, runs);
        await ScreenshotAsync(page, "runs");

        // Filtering by status.
        await page.SelectOptionAsync("select[name=status]", "Failed");
        await page.ClickAsync("#filter");
        var filtered = await page.InnerTextAsync("table");
        Assert.Contains(failed.RunId, filtered);
        Assert.DoesNotContain(ok.RunId, filtered);

        // A failed run shows its error.
        await page.ClickAsync($"text={failed.RunId}");
        Assert.Contains("card declined", await page.InnerTextAsync("#error"));
        await ScreenshotAsync(page, "run-failed");

        // Input is shown as text: no script ran, and the page has no script element from it.
        await page.GotoAsync($"{url}/runs/{ok.RunId}");
        Assert.Contains("alert(1)", await page.InnerTextAsync("pre"));
        Assert.Equal(0, await page.Locator("script").CountAsync());
        Assert.Equal(0, dialogs);
        Assert.Contains("charge", await page.InnerTextAsync("main"));
        await ScreenshotAsync(page, "run");

        // Cancel behind a confirmation.
        await page.GotoAsync($"{url}/runs/{later.RunId}");
        await page.ClickAsync("#cancel");
        await page.ClickAsync("#confirm");
        Assert.Contains("Canceled", await page.InnerTextAsync("main"));
        Assert.Equal(RunStatus.Canceled, (await later.GetStateAsync()).Status);

        // Rerun behind a confirmation: a new run with the same input.
        await page.GotoAsync($"{url}/runs/{ok.RunId}");
        await page.ClickAsync("#rerun");
        await page.ClickAsync("#confirm");
        var rerunId = new Uri(page.Url).Segments[^1];
        Assert.NotEqual(ok.RunId, rerunId);
        Assert.Equal(ok.RunId, (await RunAsync(rerunId)).RerunOf);

        await page.GotoAsync(url + "/workflows");
        Assert.Contains("checkout", await page.InnerTextAsync("table"));
        await ScreenshotAsync(page, "workflows");
    }

    [Fact]
    public async Task Actions_need_a_post_with_an_antiforgery_token_and_unknown_runs_are_404()
    {
        await StartWorkerAsync(Checkout);
        var later = await Client.EmitWorkflowAsync(Checkout, new Order("later", 1), new EmitOptions { Delay = TimeSpan.FromHours(1) });
        var (app, url) = await StartDashboardAsync();
        await using var _ = app;
        using var http = new HttpClient();
        var forged = await http.PostAsync($"{url}/runs/{later.RunId}/cancel", new FormUrlEncodedContent([]));
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, forged.StatusCode);
        Assert.Equal(RunStatus.Scheduled, (await later.GetStateAsync()).Status);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync($"{url}/runs/run_missing")).StatusCode);
    }
}
