using System.Net;
using System.Text.RegularExpressions;
using static Redflow.Dashboard.Tests.TestWorkflows;

namespace Redflow.Dashboard.Tests;

/// <summary>What was wrong before: DNS rebinding, Redis down, unfit filters, cancel of a finished run, escaped JSON; and read-only mode.</summary>
public sealed class SafetyAndErrorTests : DashboardTest
{
    private async Task<HttpResponseMessage> GetWithHostAsync(string path, string host)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, BaseUrl + path);
        request.Headers.Host = host;
        return await Http.SendAsync(request);
    }

    [Fact]
    public async Task A_forged_host_is_refused_in_loopback_mode_and_loopback_names_are_served()
    {
        var port = new Uri(BaseUrl).Port;
        foreach (var forged in new[] { $"evil.example:{port}", "evil.example", $"127.0.0.1.nip.io:{port}", $"localhost.evil.example:{port}", $"10.0.0.1:{port}" })
        {
            using var response = await GetWithHostAsync("/runs", forged);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Contains("DNS rebinding", await response.Content.ReadAsStringAsync());
        }
        foreach (var good in new[] { $"localhost:{port}", $"127.0.0.1:{port}", $"[::1]:{port}", $"LOCALHOST:{port}" })
        {
            using var response = await GetWithHostAsync("/", good);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task With_redis_down_a_page_says_redis_is_unreachable()
    {
        var port = Redflow.Tests.Fixtures.RedisServer.FreePort(); // nothing listens there
        await using var down = RedflowClient.Create($"redis://127.0.0.1:{port}");
        var (app, url) = await StartDashboardAsync(new RedflowDashboardOptions { Client = down, RedisTimeout = TimeSpan.FromSeconds(2) });
        await using var _ = app;
        foreach (var path in new[] { "/", "/runs", "/runs/run_x", "/workflows", "/queues", "/workers" })
        {
            using var response = await Http.GetAsync(url + path);
            var body = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.StartsWith("text/html", response.Content.Headers.ContentType?.ToString());
            Assert.Contains("Redis is unreachable", body);
        }
    }

    [Fact]
    public async Task Unfit_filters_answer_400_saying_what_is_wrong()
    {
        var status = await GetPageAsync("/runs?status=Bogus", HttpStatusCode.BadRequest);
        Assert.Contains("status &#39;Bogus&#39; is not a run status", status);
        Assert.Contains("Scheduled, Queued, Running", status);
        Assert.Contains("before &#39;notadate&#39; is not a time", await GetPageAsync("/runs?before=notadate", HttpStatusCode.BadRequest));
        Assert.Contains("after &#39;yesterday&#39; is not a time", await GetPageAsync("/runs?after=yesterday", HttpStatusCode.BadRequest));
        Assert.Contains("limit &#39;lots&#39; is not a whole number", await GetPageAsync("/runs?limit=lots", HttpStatusCode.BadRequest));
        Assert.Contains("offset &#39;-1&#39; is not a whole number", await GetPageAsync("/runs?offset=-1", HttpStatusCode.BadRequest));
        Assert.Contains("window &#39;1y&#39;", await GetPageAsync("/runs?window=1y", HttpStatusCode.BadRequest));
        Assert.Contains("status &#39;7&#39;", await GetPageAsync("/runs?status=7", HttpStatusCode.BadRequest));
        await GetPageAsync("/runs?status=failed&before=2030-01-01&after=2020-01-01T00:00:00Z&window=1h"); // case-insensitive; ISO and plain times
    }

    [Fact]
    public async Task Cancel_of_a_finished_run_says_nothing_was_changed()
    {
        await StartWorkerAsync("cancel-app", Checkout);
        var done = await Client.EmitWorkflowAsync(Checkout, new Order("done", 1));
        await done.ResultAsync(Generous);
        var confirm = await GetPageAsync($"/runs/{done.RunId}/cancel");
        Assert.Contains("cancel will change nothing", confirm);
        using var response = await PostFormAsync(FormAction(confirm), [AntiforgeryField(confirm)]);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Contains("<span class=\"st succeeded\">Succeeded</span> already: nothing was changed.", body);
        Assert.Equal(RunStatus.Succeeded, (await Client.GetRunAsync(done.RunId))!.Status);
    }

    [Fact]
    public async Task Json_is_stored_and_shown_as_utf8_and_pretty_printed()
    {
        await StartWorkerAsync("json-app", Child);
        var handle = await Client.EmitWorkflowAsync("child", new { customer = "Jürgen 😀 <b>&", note = "line\nbreak", zh = "中文" });
        var output = await handle.ResultAsync(Generous);
        var run = (await Client.GetRunAsync(handle.RunId))!;
        // Stored as it is: no \uXXXX but JSON's own escape of the newline.
        Assert.Equal("""{"customer":"Jürgen 😀 <b>&","note":"line\nbreak","zh":"中文"}""", run.Input.GetRawText());
        Assert.Equal(run.Input.GetRawText(), output.GetRawText());
        var html = await GetPageAsync($"/runs/{handle.RunId}");
        Assert.Equal("{\n  \"customer\": \"Jürgen 😀 <b>&\",\n  \"note\": \"line\\nbreak\",\n  \"zh\": \"中文\"\n}", JsonBlock(html, "input"));
        Assert.Contains("<span class=\"s\">&quot;Jürgen 😀 &lt;b&gt;&amp;&quot;</span>", html); // HTML encoding is the dashboard's job
        Assert.DoesNotContain("\\u00", html);
        Assert.DoesNotContain("<b>&", html);
        Assert.Contains("<details open><summary>{", html); // collapsible
    }

    [Fact]
    public async Task Read_only_mode_shows_no_actions_and_refuses_them()
    {
        await StartWorkerAsync("ro-app", Checkout);
        var later = await Client.EmitWorkflowAsync(Checkout, new Order("later", 1), new EmitOptions { Delay = TimeSpan.FromHours(1) });
        var (app, url) = await StartDashboardAsync(new RedflowDashboardOptions { Client = Client, ReadOnly = true });
        await using var _ = app;
        var page = await (await Http.GetAsync($"{url}/runs/{later.RunId}")).Content.ReadAsStringAsync();
        Assert.DoesNotContain("id=\"cancel\"", page);
        Assert.DoesNotContain("id=\"rerun\"", page);
        Assert.DoesNotContain("name=\"id\"", await (await Http.GetAsync($"{url}/runs")).Content.ReadAsStringAsync());
        using (var confirm = await Http.GetAsync($"{url}/runs/{later.RunId}/cancel")) Assert.Equal(HttpStatusCode.Forbidden, confirm.StatusCode);
        using (var post = await Http.PostAsync($"{url}/runs/{later.RunId}/cancel", new FormUrlEncodedContent([]))) Assert.Equal(HttpStatusCode.Forbidden, post.StatusCode);
        using (var bulk = await Http.GetAsync($"{url}/bulk?action=cancel&id={later.RunId}")) Assert.Equal(HttpStatusCode.Forbidden, bulk.StatusCode);
        Assert.Equal(RunStatus.Scheduled, (await Client.GetRunAsync(later.RunId))!.Status);
    }

    [Fact]
    public async Task Bulk_rerun_of_all_failed_runs_of_a_workflow_says_how_many_and_needs_the_token()
    {
        await StartWorkerAsync("bulk-app", Checkout);
        var failed = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var h = await Client.EmitWorkflowAsync(Checkout, new Order($"bad{i}", -1));
            await Assert.ThrowsAsync<RunFailedException>(() => h.ResultAsync(Generous));
            failed.Add(h.RunId);
        }
        await (await Client.EmitWorkflowAsync(Checkout, new Order("ok", 1))).ResultAsync(Generous);
        var workflowPage = await GetPageAsync("/workflows/checkout");
        Assert.Contains("id=\"rerun-all-failed\" href=\"/redflow/bulk?action=rerun&amp;workflow=checkout&amp;status=Failed\"", workflowPage);
        var confirm = await GetPageAsync("/bulk?action=rerun&workflow=checkout&status=Failed");
        Assert.Contains("data-count=\"3\"", confirm);
        Assert.Contains("Yes, rerun 3 runs", confirm);
        using (var noToken = await PostFormAsync(BaseUrl + "/bulk", [new("action", "rerun"), new("id", failed[0])]))
            Assert.Equal(HttpStatusCode.BadRequest, noToken.StatusCode);
        var fields = new List<KeyValuePair<string, string>> { AntiforgeryField(confirm), new("action", "rerun") };
        fields.AddRange(Regex.Matches(confirm, "<input type=\"hidden\" name=\"id\" value=\"([^\"]+)\">").Select(m => new KeyValuePair<string, string>("id", m.Groups[1].Value)));
        Assert.Equal(3, fields.Count - 2);
        using var response = await PostFormAsync(FormAction(confirm), fields);
        var result = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("data-done=\"3\"", result);
        var reruns = (await Client.ListRunsAsync(new ListRunsParams { Workflow = "checkout", Limit = 100 })).Where(r => r.RerunOf is not null).ToList();
        Assert.Equal(failed.Order(), reruns.Select(r => r.RerunOf!).Order());
    }

    [Fact]
    public async Task Resume_of_a_failed_run_goes_through_its_confirmation_and_in_bulk_says_how_many()
    {
        await StartWorkerAsync("resume-app", Checkout);
        var failed = await Client.EmitWorkflowAsync(Checkout, new Order("bad", -1));
        await Assert.ThrowsAsync<RunFailedException>(() => failed.ResultAsync(Generous));
        var before = (await Client.GetRunAsync(failed.RunId))!;
        var page = await GetPageAsync($"/runs/{failed.RunId}");
        Assert.Contains($"<a id=\"resume\" href=\"/redflow/runs/{failed.RunId}/resume\">", page);
        var confirm = await GetPageAsync($"/runs/{failed.RunId}/resume");
        Assert.Contains("as the same run", confirm);
        using (var response = await PostFormAsync(FormAction(confirm), [AntiforgeryField(confirm)]))
        {
            Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
            Assert.Equal($"/redflow/runs/{failed.RunId}", response.Headers.Location?.ToString());
        }
        // The handler fails again at once (a negative amount); the record shows the resume and the fresh attempt.
        await EventuallyAsync(async () => (await Client.GetRunAsync(failed.RunId))! is { Status: RunStatus.Failed } r && r.Resumes > before.Resumes, "the resumed run failed again");
        Assert.Equal(before.Attempt + 1, (await Client.GetRunAsync(failed.RunId))!.Attempt);

        var bulk = await GetPageAsync("/bulk?action=resume&workflow=checkout&status=Failed");
        Assert.Contains("data-count=\"1\"", bulk);
        Assert.Contains("Yes, resume 1 run", bulk);

        var ok = await Client.EmitWorkflowAsync(Checkout, new Order("ok", 1));
        await ok.ResultAsync(Generous);
        var noop = await GetPageAsync($"/runs/{ok.RunId}/resume");
        Assert.Contains("resume will change nothing", noop);
        using var conflict = await PostFormAsync(FormAction(noop), [AntiforgeryField(noop)]);
        Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);
    }
}
