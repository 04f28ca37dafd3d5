using System.Globalization;
using static Redflow.Dashboard.Tests.TestWorkflows;

namespace Redflow.Dashboard.Tests;

/// <summary>The runs page: newest first, filtered by workflow, status and creation time, paged with limit and offset.</summary>
public sealed class RunsPageTests : DashboardTest
{
    private static string At(DateTimeOffset t) => Uri.EscapeDataString(t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture));

    [Fact]
    public async Task Runs_are_newest_first_filtered_and_paged()
    {
        await StartWorkerAsync("runs-app", Checkout, Audit);
        var scheduled = new List<string>();
        for (var i = 0; i < 7; i++)
            scheduled.Add((await Client.EmitWorkflowAsync(Checkout, new Order($"o{i}", i), new EmitOptions { Delay = TimeSpan.FromHours(1) })).RunId);
        var audits = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            var h = await Client.EmitWorkflowAsync("audit", new { n = i });
            await h.ResultAsync(Generous);
            audits.Add(h.RunId);
        }
        var newestFirst = (await Client.ListRunsAsync()).Select(r => r.Id).ToList();
        Assert.Equal(9, newestFirst.Count);

        // All runs, newest first, as the client lists them.
        Assert.Equal(newestFirst, RunIds(await GetPageAsync("/runs")));

        // By workflow, three per page.
        var checkoutNewest = Enumerable.Reverse(scheduled).ToList();
        var page1 = await GetPageAsync("/runs?workflow=checkout&limit=3");
        Assert.Equal(checkoutNewest.Take(3), RunIds(page1));
        Assert.Contains("id=\"older\"", page1);
        Assert.DoesNotContain("id=\"newer\"", page1);
        Assert.Contains("runs 1–3", page1);
        var page2 = await GetPageAsync("/runs?workflow=checkout&limit=3&offset=3");
        Assert.Equal(checkoutNewest.Skip(3).Take(3), RunIds(page2));
        Assert.Contains("id=\"newer\"", page2);
        var page3 = await GetPageAsync("/runs?workflow=checkout&limit=3&offset=6");
        Assert.Equal(checkoutNewest.Skip(6), RunIds(page3));
        Assert.DoesNotContain("id=\"older\"", page3);
        // The pager links carry the filters along (HTML-encoded query string).
        Assert.Contains("workflow=checkout&amp;status=&amp;queue=&amp;window=&amp;after=&amp;before=&amp;limit=3&amp;offset=6", page2);

        // By status, and by workflow and status together.
        Assert.Equal(Enumerable.Reverse(audits), RunIds(await GetPageAsync("/runs?status=Succeeded")));
        Assert.Equal(checkoutNewest, RunIds(await GetPageAsync("/runs?status=scheduled&workflow=checkout")));
        Assert.Empty(RunIds(await GetPageAsync("/runs?status=Failed")));
        Assert.Contains("<option selected>Scheduled</option>", await GetPageAsync("/runs?status=Scheduled"));

        // By creation time.
        var now = DateTimeOffset.UtcNow;
        Assert.Equal(newestFirst, RunIds(await GetPageAsync($"/runs?after={At(now.AddHours(-1))}&before={At(now.AddHours(1))}")));
        Assert.Empty(RunIds(await GetPageAsync($"/runs?after={At(now.AddHours(1))}")));
        Assert.Empty(RunIds(await GetPageAsync($"/runs?before={At(now.AddHours(-1))}")));
        var oldest = (await Client.GetRunAsync(scheduled[0]))!.CreatedAt;
        Assert.DoesNotContain(scheduled[0], RunIds(await GetPageAsync($"/runs?before={Uri.EscapeDataString(oldest.ToString("O"))}")));
    }

    [Fact]
    public async Task The_default_page_is_fifty_runs_with_a_link_to_the_next()
    {
        await StartWorkerAsync("runs-app", Checkout);
        var ids = new List<string>();
        for (var i = 0; i < 55; i++)
            ids.Add((await Client.EmitWorkflowAsync(Checkout, new Order($"o{i}", i), new EmitOptions { Delay = TimeSpan.FromHours(1) })).RunId);
        ids.Reverse();
        var first = await GetPageAsync("/runs");
        Assert.Equal(ids.Take(50), RunIds(first));
        Assert.Contains("limit=50&amp;offset=50", first);
        Assert.Equal(ids.Skip(50), RunIds(await GetPageAsync("/runs?offset=50")));
    }
}
