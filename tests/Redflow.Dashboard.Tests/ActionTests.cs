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
    public async Task Rerun_of_an_unknown_run_is_a_404()
    {
        await GetPageAsync("/runs/run_gone/rerun", HttpStatusCode.NotFound);
        var confirm = await GetPageAsync("/bulk?action=rerun&id=run_gone"); // any confirmation page gives a token
        using var response = await PostAsync(BaseUrl + "/runs/run_gone/rerun", AntiforgeryField(confirm));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
