using System.Net;
using static Redflow.Dashboard.Tests.TestWorkflows;

namespace Redflow.Dashboard.Tests;

/// <summary>Cancel and rerun: a link to a confirmation page whose POST form carries the antiforgery token.</summary>
public sealed class ActionTests : DashboardTest
{
    private async Task<HttpResponseMessage> PostAsync(string url, KeyValuePair<string, string>? field, string? origin = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new FormUrlEncodedContent(field is { } f ? [f] : []),
        };
        if (origin is not null) request.Headers.Add("Origin", origin);
        return await Http.SendAsync(request);
    }

    [Fact]
    public async Task Cancel_goes_through_its_confirmation_and_needs_the_token()
    {
        await StartWorkerAsync("action-app", Checkout);
        var handle = await Client.EmitWorkflowAsync(Checkout, new Order("later", 1), new EmitOptions { Delay = TimeSpan.FromHours(1) });

        var runPage = await GetPageAsync($"/runs/{handle.RunId}");
        Assert.Contains($"<a id=\"cancel\" href=\"/redflow/runs/{handle.RunId}/cancel\">", runPage);
        var confirm = await GetPageAsync($"/runs/{handle.RunId}/cancel");
        Assert.Contains("This will cancel this run", confirm);
        var action = FormAction(confirm);
        Assert.Equal($"{BaseUrl}/runs/{handle.RunId}/cancel", action);
        var token = AntiforgeryField(confirm);

        // A GET of the confirmation changes nothing; a POST without the token or from another origin is refused.
        using (var noToken = await PostAsync(action, null)) Assert.Equal(HttpStatusCode.BadRequest, noToken.StatusCode);
        using (var wrongToken = await PostAsync(action, new(token.Key, "forged"))) Assert.Equal(HttpStatusCode.BadRequest, wrongToken.StatusCode);
        using (var crossSite = await PostAsync(action, token, origin: "http://evil.example")) Assert.Equal(HttpStatusCode.Forbidden, crossSite.StatusCode);
        Assert.Equal(RunStatus.Scheduled, (await Client.GetRunAsync(handle.RunId))!.Status);

        using (var ok = await PostAsync(action, token, origin: new Uri(BaseUrl).GetLeftPart(UriPartial.Authority)))
        {
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
            Assert.Equal($"/redflow/runs/{handle.RunId}", ok.Headers.Location?.ToString());
        }
        var run = (await Client.GetRunAsync(handle.RunId))!;
        Assert.Equal(RunStatus.Canceled, run.Status);
        var after = await GetPageAsync($"/runs/{handle.RunId}");
        Assert.Contains("<span class=\"st canceled\">Canceled</span>", after);
        Assert.Contains("<tr><td>Cancel reason</td><td>canceled from the dashboard</td></tr>", after);
        Assert.DoesNotContain("id=\"cancel\"", after);
    }

    [Fact]
    public async Task Rerun_goes_through_its_confirmation_and_starts_a_new_run_with_the_same_input()
    {
        await StartWorkerAsync("action-app", Checkout);
        var original = await Client.EmitWorkflowAsync(Checkout, new Order("again", 5));
        Assert.Equal(10, await original.ResultAsync(Generous));

        var confirm = await GetPageAsync($"/runs/{original.RunId}/rerun");
        Assert.Contains("start a new run of the same workflow with the same input", confirm);
        using var response = await PostAsync(FormAction(confirm), AntiforgeryField(confirm));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        var location = response.Headers.Location!.ToString();
        Assert.StartsWith("/redflow/runs/", location);
        var newId = Uri.UnescapeDataString(location["/redflow/runs/".Length..]);
        Assert.NotEqual(original.RunId, newId);

        Assert.Equal(10, (await Client.GetHandle(newId).ResultAsync(Generous)).GetInt32());
        var rerun = (await Client.GetRunAsync(newId))!;
        var first = (await Client.GetRunAsync(original.RunId))!;
        Assert.Equal(original.RunId, rerun.RerunOf);
        Assert.Equal(first.Input.GetRawText(), rerun.Input.GetRawText());
        var page = await GetPageAsync($"/runs/{newId}");
        Assert.Contains($"<tr><td>Rerun of</td><td><a href=\"/redflow/runs/{original.RunId}\">{original.RunId}</a></td></tr>", page);
    }

    [Fact]
    public async Task A_waiting_run_shows_its_waits_and_a_signal_sent_from_its_page_resumes_it()
    {
        var approval = Workflows.Define<Order, string>("dash-approval", async ctx =>
        {
            var by = await ctx.Step.WaitForSignalAsync<string>("approval", "approve", new WaitOptions { Timeout = TimeSpan.FromHours(1) });
            return $"approved by {by}";
        }, new WorkflowOptions { MaxConcurrency = 5 });
        await StartWorkerAsync("action-app", approval);
        var handle = await Client.EmitWorkflowAsync("dash-approval", new Order("o", 1));
        await EventuallyAsync(async () => (await Client.GetRunAsync(handle.RunId))!.Status == RunStatus.Waiting, "the run waits");

        var page = await GetPageAsync($"/runs/{handle.RunId}");
        Assert.Contains("<h2>Waiting on</h2>", page);
        Assert.Contains("<td>approval</td><td>signal</td><td>approve</td>", page);
        Assert.Contains($"<a id=\"signal\" href=\"/redflow/runs/{handle.RunId}/signal\">", page);
        var form = await GetPageAsync($"/runs/{handle.RunId}/signal");
        Assert.Contains("value=\"approve\"", form); // the signal it waits on, filled in
        var token = AntiforgeryField(form);
        using (var noToken = await PostFormAsync(FormAction(form), [new("signal", "approve"), new("payload", "\"eve\"")]))
            Assert.Equal(HttpStatusCode.BadRequest, noToken.StatusCode);
        using (var badJson = await PostFormAsync(FormAction(form), [token, new("signal", "approve"), new("payload", "{oops")]))
        {
            Assert.Equal(HttpStatusCode.BadRequest, badJson.StatusCode);
            Assert.Contains("not valid JSON", await badJson.Content.ReadAsStringAsync());
        }
        Assert.Equal(RunStatus.Waiting, (await Client.GetRunAsync(handle.RunId))!.Status); // nothing was sent
        using (var ok = await PostFormAsync(FormAction(form), [token, new("signal", "approve"), new("payload", "\"eve\"")]))
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
        Assert.Equal("approved by eve", await handle.ResultAsync<string>(Generous));
        using (var late = await PostFormAsync(FormAction(form), [token, new("signal", "approve"), new("payload", "1")]))
            Assert.Equal(HttpStatusCode.Conflict, late.StatusCode); // finished: nothing was sent
    }

    [Fact]
    public async Task A_run_that_failed_before_it_succeeded_shows_its_failed_attempts()
    {
        var tries = 0;
        var flaky = Workflows.Define<Order, int>("dash-flaky", async ctx =>
            Interlocked.Increment(ref tries) < 3 ? throw new InvalidOperationException($"try {tries}") : 1,
            new WorkflowOptions { MaxConcurrency = 5, Retry = new RetryPolicy { InitialDelay = TimeSpan.FromMilliseconds(20) } });
        await StartWorkerAsync("action-app", flaky);
        var handle = await Client.EmitWorkflowAsync("dash-flaky", new Order("o", 1));
        Assert.Equal(1, await handle.ResultAsync<int>(Generous));
        var page = await GetPageAsync($"/runs/{handle.RunId}");
        Assert.Contains("<h2>Failed attempts</h2>", page);
        Assert.Contains("System.InvalidOperationException: try 1", page);
        Assert.Contains("System.InvalidOperationException: try 2", page);
        Assert.DoesNotContain("<h2>Error</h2>", page); // it succeeded: it ended with no error
    }

    [Fact]
    public async Task Rerun_of_an_unknown_run_is_a_404()
    {
        await GetPageAsync("/runs/run_gone/rerun", HttpStatusCode.NotFound);
        var confirm = await GetPageAsync("/bulk?action=rerun&id=run_gone"); // any confirmation page gives a token
        using var response = await PostAsync(BaseUrl + "/runs/run_gone/rerun", AntiforgeryField(confirm));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
