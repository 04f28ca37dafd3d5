using System.Net;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Redflow.Dashboard.Tests;

/// <summary>Pause, resume and "trigger now" of a cron trigger on the workflow's page, behind confirmation and antiforgery.</summary>
public sealed class CronActionTests : DashboardTest
{
    private static WorkflowDefinition Report() => Workflows.Define("report", ctx => Task.FromResult<object?>(ctx.Input), new WorkflowOptions
    {
        Cron = [new CronTrigger("0 0 1 1 *") { Id = "yearly", Timezone = "Europe/Berlin", Input = new { region = "eu" } }], // never fires during a test
    });

    [Fact]
    public async Task Pause_resume_and_trigger_now_go_through_their_confirmations_and_need_the_token()
    {
        await StartWorkerAsync("cron-app", Report());
        var page = await GetPageAsync("/workflows/report");
        Assert.Contains("<span class=\"st running\">Active</span>", page);
        Assert.Contains("href=\"/redflow/workflows/report/cron/pause?trigger=yearly\"", page);
        Assert.Contains("href=\"/redflow/workflows/report/cron/trigger?trigger=yearly\"", page);
        Assert.DoesNotContain("/cron/resume?", page);

        // Pause: the confirmation changes nothing; its POST needs the token.
        var confirm = await GetPageAsync("/workflows/report/cron/pause?trigger=yearly");
        Assert.Contains("This will pause this trigger", confirm);
        Assert.False(Assert.Single((await Client.GetWorkflowMetaAsync("report"))!.Cron).Paused);
        var action = FormAction(confirm);
        Assert.Equal($"{BaseUrl}/workflows/report/cron/pause", action);
        using (var noToken = await PostFormAsync(action, [new("trigger", "yearly")])) Assert.Equal(HttpStatusCode.BadRequest, noToken.StatusCode);
        Assert.False(Assert.Single((await Client.GetWorkflowMetaAsync("report"))!.Cron).Paused);
        using (var ok = await PostFormAsync(action, [AntiforgeryField(confirm), new("trigger", "yearly")]))
        {
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
            Assert.Equal("/redflow/workflows/report", ok.Headers.Location?.ToString());
        }
        Assert.True(Assert.Single((await Client.GetWorkflowMetaAsync("report"))!.Cron).Paused);
        page = await GetPageAsync("/workflows/report");
        Assert.Contains("<span class=\"st waiting\">Paused</span>", page);
        Assert.Contains("href=\"/redflow/workflows/report/cron/resume?trigger=yearly\"", page);
        Assert.Contains("<span class=\"st waiting\">Paused</span>", await GetPageAsync("/workflows"));

        // Pausing again says nothing was changed.
        var again = await GetPageAsync("/workflows/report/cron/pause?trigger=yearly");
        Assert.Contains("paused already: pause will change nothing", again);
        using (var twice = await PostFormAsync(FormAction(again), [AntiforgeryField(again), new("trigger", "yearly")]))
        {
            Assert.Equal(HttpStatusCode.Conflict, twice.StatusCode);
            Assert.Contains("nothing was changed", await twice.Content.ReadAsStringAsync());
        }

        // Trigger now: one run with the trigger's input; the redirect names it.
        var trigger = await GetPageAsync("/workflows/report/cron/trigger?trigger=yearly");
        Assert.Contains("start one run of the workflow now", trigger);
        Assert.Contains("eu", JsonBlock(trigger, "input"));
        string runId;
        using (var ok = await PostFormAsync(FormAction(trigger), [AntiforgeryField(trigger), new("trigger", "yearly")]))
        {
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
            var location = ok.Headers.Location!.ToString();
            Assert.StartsWith("/redflow/runs/", location);
            runId = Uri.UnescapeDataString(location["/redflow/runs/".Length..]);
        }
        var run = (await Client.GetRunAsync(runId))!;
        Assert.Equal("report", run.Workflow);
        Assert.Null(run.IdempotencyKey);
        Assert.Equal("eu", run.Input.GetProperty("region").GetString());
        Assert.Equal("eu", (await Client.GetHandle(runId).ResultAsync(Generous)).GetProperty("region").GetString());

        // Resume.
        var resume = await GetPageAsync("/workflows/report/cron/resume?trigger=yearly");
        using (var ok = await PostFormAsync(FormAction(resume), [AntiforgeryField(resume), new("trigger", "yearly")]))
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
        Assert.False(Assert.Single((await Client.GetWorkflowMetaAsync("report"))!.Cron).Paused);
        Assert.Single(await Client.ListRunsAsync(new ListRunsParams { Workflow = "report" }));
    }

    [Fact]
    public async Task An_unknown_workflow_or_trigger_is_a_404_and_changes_nothing()
    {
        await StartWorkerAsync("cron-app", Report());
        Assert.Contains("has no cron trigger <code>nope</code>", await GetPageAsync("/workflows/report/cron/pause?trigger=nope", HttpStatusCode.NotFound));
        Assert.Contains("is not registered", await GetPageAsync("/workflows/nowhere/cron/trigger?trigger=yearly", HttpStatusCode.NotFound));
        await GetPageAsync("/workflows/report/cron/pause", HttpStatusCode.BadRequest);
        // A valid token on a POST naming an unknown trigger.
        var confirm = await GetPageAsync("/workflows/report/cron/trigger?trigger=yearly");
        using (var post = await PostFormAsync(BaseUrl + "/workflows/report/cron/trigger", [AntiforgeryField(confirm), new("trigger", "nope")]))
            Assert.Equal(HttpStatusCode.NotFound, post.StatusCode);
        using (var post = await PostFormAsync(BaseUrl + "/workflows/report/cron/pause", [AntiforgeryField(confirm), new("trigger", "nope")]))
            Assert.Equal(HttpStatusCode.NotFound, post.StatusCode);
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "report" }));
        Assert.False(Assert.Single((await Client.GetWorkflowMetaAsync("report"))!.Cron).Paused);
    }

    [Fact]
    public async Task Read_only_mode_shows_no_cron_actions_and_refuses_them()
    {
        await StartWorkerAsync("cron-app", Report());
        var (app, url) = await StartDashboardAsync(new RedflowDashboardOptions { Client = Client, ReadOnly = true });
        await using var _ = app;
        var page = await (await Http.GetAsync($"{url}/workflows/report")).Content.ReadAsStringAsync();
        Assert.Contains("<span class=\"st running\">Active</span>", page);
        Assert.DoesNotContain("/cron/", page);
        foreach (var action in new[] { "pause", "resume", "trigger" })
        {
            using (var get = await Http.GetAsync($"{url}/workflows/report/cron/{action}?trigger=yearly")) Assert.Equal(HttpStatusCode.Forbidden, get.StatusCode);
            using (var post = await Http.PostAsync($"{url}/workflows/report/cron/{action}", new FormUrlEncodedContent([new("trigger", "yearly")])))
                Assert.Equal(HttpStatusCode.Forbidden, post.StatusCode);
        }
        Assert.False(Assert.Single((await Client.GetWorkflowMetaAsync("report"))!.Cron).Paused);
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "report" }));
    }

    [Fact]
    public async Task The_actions_policy_guards_the_cron_actions_and_not_the_page()
    {
        await StartWorkerAsync("cron-app", Report());
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddRedflowDashboard();
        builder.Services.AddAuthentication("header").AddScheme<AuthenticationSchemeOptions, HeaderAuth>("header", null);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy("view", p => p.RequireAuthenticatedUser())
            .AddPolicy("operate", p => p.RequireRole("operator"));
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapRedflowDashboard("/redflow", new RedflowDashboardOptions { Client = Client, AuthorizationPolicy = "view", ActionsAuthorizationPolicy = "operate" });
        await app.StartAsync();
        var url = app.Urls.First() + "/redflow";
        async Task<HttpStatusCode> Get(string path, string role)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url + path);
            request.Headers.Add("X-Role", role);
            using var response = await Http.SendAsync(request);
            return response.StatusCode;
        }
        Assert.Equal(HttpStatusCode.OK, await Get("/workflows/report", "viewer"));
        Assert.Equal(HttpStatusCode.Forbidden, await Get("/workflows/report/cron/pause?trigger=yearly", "viewer"));
        Assert.Equal(HttpStatusCode.Forbidden, await Get("/workflows/report/cron/trigger?trigger=yearly", "viewer"));
        using (var post = new HttpRequestMessage(HttpMethod.Post, url + "/workflows/report/cron/trigger") { Content = new FormUrlEncodedContent([new("trigger", "yearly")]) })
        {
            post.Headers.Add("X-Role", "viewer");
            using var response = await Http.SendAsync(post);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }
        Assert.Equal(HttpStatusCode.OK, await Get("/workflows/report/cron/pause?trigger=yearly", "operator"));
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "report" }));
    }

    /// <summary>Authenticates every request as a user in the role its <c>X-Role</c> header names.</summary>
    private sealed class HeaderAuth(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            var role = Request.Headers["X-Role"].ToString();
            if (role.Length == 0) return Task.FromResult(AuthenticateResult.NoResult());
            var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "someone"), new Claim(ClaimTypes.Role, role)], "header");
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), "header")));
        }
    }
}
