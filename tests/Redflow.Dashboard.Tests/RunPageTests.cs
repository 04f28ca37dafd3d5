using System.Text.RegularExpressions;
using static Redflow.Dashboard.Tests.TestWorkflows;

namespace Redflow.Dashboard.Tests;

/// <summary>A run's page: fields, input, output, error with stack trace, parent and children, step timeline; encoding.</summary>
public sealed class RunPageTests : DashboardTest
{
    [Fact]
    public async Task A_succeeded_run_shows_input_output_attempts_and_a_step_timeline_with_durations()
    {
        await StartWorkerAsync("run-app", Checkout);
        var handle = await Client.EmitWorkflowAsync(Checkout, new Order("order-7", 21), new EmitOptions { IdempotencyKey = "order-7" });
        Assert.Equal(42, await handle.ResultAsync(Generous));

        var html = await GetPageAsync($"/runs/{handle.RunId}");
        Assert.Contains($"<h1>Run {handle.RunId}</h1>", html);
        Assert.Contains("<tr><td>Workflow</td><td>checkout</td></tr>", html);
        Assert.Contains("<tr><td>Status</td><td><span class=\"st succeeded\">Succeeded</span></td></tr>", html);
        Assert.Contains("<tr><td>Attempt</td><td>1 of 2</td></tr>", html);
        Assert.Contains("<tr><td>Resumes</td><td>0</td></tr>", html);
        Assert.Contains("<tr><td>Idempotency key</td><td>order-7</td></tr>", html);
        Assert.Equal("{\n  \"id\": \"order-7\",\n  \"amount\": 21\n}", JsonBlock(html, "input")); // pretty-printed
        Assert.Equal("42", JsonBlock(html, "output"));
        Assert.DoesNotContain("<h2>Error</h2>", html);
        // Steps in the order they ran, each with its duration and a bar; reserve took at least its 25 ms delay.
        var steps = Regex.Matches(html, "<tr><td>(reserve|charge)</td><td><span class=\"st succeeded\">Succeeded</span></td><td>1</td><td><time[^>]*>[^<]*</time></td><td>(\\d+) ms</td>");
        Assert.Equal(["reserve", "charge"], steps.Select(m => m.Groups[1].Value));
        Assert.True(int.Parse(steps[0].Groups[2].Value) >= 20, $"reserve took {steps[0].Groups[2].Value} ms");
        // A finished run can be rerun but not canceled.
        Assert.Contains("id=\"rerun\"", html);
        Assert.DoesNotContain("id=\"cancel\"", html);
    }

    [Fact]
    public async Task Parent_and_children_link_to_each_other()
    {
        await StartWorkerAsync("run-app", Parent, Child);
        var parent = await Client.EmitWorkflowAsync(Parent, new Order("p", 1));
        var childId = await parent.ResultAsync(Generous);
        await Client.GetHandle(childId).ResultAsync(Generous);

        var parentPage = await GetPageAsync($"/runs/{parent.RunId}");
        Assert.Matches(new Regex($"<h2>Children</h2>\\s*<table>.*<a href=\"/redflow/runs/{childId}\">{childId}</a></td><td>child</td>", RegexOptions.Singleline), parentPage);
        Assert.Contains("<td>emit-child</td>", parentPage);

        var childPage = await GetPageAsync($"/runs/{childId}");
        Assert.Contains($"<tr><td>Parent</td><td><a href=\"/redflow/runs/{parent.RunId}\">{parent.RunId}</a></td></tr>", childPage);
        Assert.Equal("{\n  \"id\": \"p\"\n}", JsonBlock(childPage, "input"));
    }

    [Fact]
    public async Task A_failed_run_shows_its_error_with_stack_trace_and_user_text_is_encoded()
    {
        var bold = Workflows.Define("<b>bold</b>", ctx => Task.FromResult<object?>(ctx.Input), new WorkflowOptions { MaxConcurrency = 2 });
        await StartWorkerAsync("run-app", Checkout, bold);
        const string Evil = "<script>alert(1)</script>";
        var handle = await Client.EmitWorkflowAsync(Checkout, new Order(Evil, -1), new EmitOptions { IdempotencyKey = "<img src=x onerror=alert(2)>" });
        await Assert.ThrowsAsync<RunFailedException>(() => handle.ResultAsync(Generous));
        var run = (await Client.GetRunAsync(handle.RunId))!;
        Assert.False(string.IsNullOrEmpty(run.Error?.StackTrace));

        var html = await GetPageAsync($"/runs/{handle.RunId}");
        Assert.Contains("<tr><td>Status</td><td><span class=\"st failed\">Failed</span></td></tr>", html);
        Assert.Contains("<tr><td>Attempt</td><td>1 of 2</td></tr>", html);
        // The error: type, message (which repeats the hostile order id, encoded) and the stack trace.
        Assert.Contains("<pre id=\"error\">Redflow.NonRetriableException: card declined for &lt;script&gt;alert(1)&lt;/script&gt;\n", html);
        var firstFrame = run.Error!.StackTrace!.Split('\n')[0].Trim();
        Assert.Contains(System.Net.WebUtility.HtmlEncode(firstFrame), html);
        // Nothing user-supplied comes through as markup.
        Assert.Contains("<td>Idempotency key</td><td>&lt;img src=x onerror=alert(2)&gt;</td>", html);
        Assert.DoesNotContain("<script>alert", html);
        Assert.DoesNotContain("<img", html);

        // A workflow name and an input with markup, on the runs list too.
        var raw = await Client.EmitWorkflowAsync("<b>bold</b>", new { note = Evil });
        await raw.ResultAsync(Generous);
        var list = await GetPageAsync("/runs");
        Assert.Contains(">&lt;b&gt;bold&lt;/b&gt;</a></td>", list);
        Assert.DoesNotContain("<b>bold", list);
        var rawPage = await GetPageAsync($"/runs/{raw.RunId}");
        Assert.DoesNotContain("<script>alert", rawPage);
        Assert.Contains("<tr><td>Workflow</td><td>&lt;b&gt;bold&lt;/b&gt;</td></tr>", rawPage);
        Assert.Contains("<option>&lt;b&gt;bold&lt;/b&gt;</option>", list);
        Assert.Contains("&lt;b&gt;bold&lt;/b&gt;", await GetPageAsync("/workflows"));
        Assert.Contains("<title>Run " + raw.RunId, rawPage);
    }
}
