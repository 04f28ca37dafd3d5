using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using static Redflow.Dashboard.Html;

namespace Redflow.Dashboard;

/// <summary>Options of the dashboard.</summary>
public sealed class RedflowDashboardOptions
{
    /// <summary>
    /// An authorization policy name the dashboard's endpoints require. When null (the default), only requests from
    /// loopback addresses are allowed.
    /// </summary>
    public string? AuthorizationPolicy { get; init; }

    /// <summary>The client to read through; null resolves <see cref="IRedflowClient"/> from the request's services.</summary>
    public IRedflowClient? Client { get; init; }
}

/// <summary>Mounts the Redflow dashboard in an ASP.NET Core app.</summary>
public static class RedflowDashboardExtensions
{
    /// <summary>Adds what the dashboard needs (antiforgery for its actions). Call it with the app's other services.</summary>
    public static IServiceCollection AddRedflowDashboard(this IServiceCollection services) => services.AddAntiforgery();

    /// <summary>Maps the dashboard under <paramref name="prefix"/>, reading through <paramref name="client"/> instead of the services.</summary>
    public static RouteGroupBuilder MapRedflowDashboard(this IEndpointRouteBuilder endpoints, string prefix, IRedflowClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        return endpoints.MapRedflowDashboard(prefix, new RedflowDashboardOptions { Client = client });
    }

    /// <summary>
    /// Maps the dashboard under <paramref name="prefix"/>: overview, runs (filtered, paged), a run with its steps,
    /// workflows; cancel and rerun behind a confirmation (POST with an antiforgery token). It reads only through the
    /// client's inspection API.
    /// </summary>
    public static RouteGroupBuilder MapRedflowDashboard(this IEndpointRouteBuilder endpoints, string prefix = "/redflow", RedflowDashboardOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        options ??= new RedflowDashboardOptions();
        var basePath = "/" + prefix.Trim('/');
        var group = endpoints.MapGroup(basePath);
        if (options.AuthorizationPolicy is { } policy) group.RequireAuthorization(policy);
        else group.AddEndpointFilter(async (ctx, next) =>
            ctx.HttpContext.Connection.RemoteIpAddress is { } ip && IPAddress.IsLoopback(ip)
                ? await next(ctx)
                : Results.Text("The Redflow dashboard only answers loopback requests unless an authorization policy is set.", statusCode: 403));
        group.AddEndpointFilter(async (ctx, next) =>
        {
            try
            {
                return await next(ctx);
            }
            catch (ArgumentException ex)
            {
                return Results.Content(Html.Page(basePath, "Bad request", $"<p>{E(ex.Message)}</p>"), "text/html; charset=utf-8", statusCode: 400);
            }
        });

        IRedflowClient Client(HttpContext http) => options.Client ?? http.RequestServices.GetService<IRedflowClient>()
            ?? throw new InvalidOperationException("Register an IRedflowClient in the services, or give RedflowDashboardOptions.Client.");

        // Explicit return types: a lambda taking only HttpContext would otherwise bind to RequestDelegate and drop its result.
        group.MapGet("/", async Task<IResult> (HttpContext http) => Page(basePath, "Overview", await OverviewAsync(basePath, Client(http), http.RequestAborted)));
        group.MapGet("/runs", async (HttpContext http, string? workflow, string? status, int? offset, int? limit, string? before, string? after) =>
            Page(basePath, "Runs", await RunsAsync(basePath, Client(http), new RunsQuery(workflow, status, offset ?? 0, limit ?? DefaultPageSize, before, after), http.RequestAborted)));
        group.MapGet("/runs/{id}", async (HttpContext http, string id) =>
            await RunAsync(basePath, Client(http), id, http.RequestAborted) is { } body ? Page(basePath, $"Run {id}", body) : NotFound(basePath, id));
        foreach (var action in new[] { "cancel", "rerun" })
            group.MapGet($"/runs/{{id}}/{action}", (HttpContext http, string id) =>
                Page(basePath, $"{Capital(action)} run {id}?", Confirm(basePath, http, id, action)));
        group.MapPost("/runs/{id}/cancel", async (HttpContext http, string id) =>
        {
            if (await Invalid(http) is { } bad) return bad;
            await Client(http).CancelRunAsync(id, "canceled from the dashboard", http.RequestAborted);
            return Results.Redirect($"{basePath}/runs/{Uri.EscapeDataString(id)}");
        });
        group.MapPost("/runs/{id}/rerun", async (HttpContext http, string id) =>
        {
            if (await Invalid(http) is { } bad) return bad;
            if (await Client(http).GetRunAsync(id, http.RequestAborted) is null) return NotFound(basePath, id);
            var handle = await Client(http).RerunAsync(id, http.RequestAborted);
            return Results.Redirect($"{basePath}/runs/{Uri.EscapeDataString(handle.RunId)}");
        });
        group.MapGet("/workflows", async Task<IResult> (HttpContext http) => Page(basePath, "Workflows", await WorkflowsAsync(Client(http), http.RequestAborted)));
        return group;
    }

    private static IResult Page(string basePath, string title, string body) => Results.Content(Html.Page(basePath, title, body), "text/html; charset=utf-8");

    private static IResult NotFound(string basePath, string id) =>
        Results.Content(Html.Page(basePath, "Not found", $"<p>Run <code>{E(id)}</code> does not exist (or its retention has passed).</p>"), "text/html; charset=utf-8", statusCode: 404);

    private static string Capital(string s) => char.ToUpperInvariant(s[0]) + s[1..];

    /// <summary>
    /// Refuses an action POST that is cross-site (an <c>Origin</c> other than the request's own, or
    /// <c>Sec-Fetch-Site: cross-site</c>) or that lacks the confirmation page's antiforgery token.
    /// </summary>
    private static async Task<IResult?> Invalid(HttpContext http)
    {
        var origin = http.Request.Headers.Origin.ToString();
        var own = $"{http.Request.Scheme}://{http.Request.Host}";
        if ((origin.Length > 0 && origin != "null" && !string.Equals(origin, own, StringComparison.OrdinalIgnoreCase))
            || string.Equals(http.Request.Headers["Sec-Fetch-Site"].ToString(), "cross-site", StringComparison.OrdinalIgnoreCase))
            return Results.Text("Cross-site requests cannot act on runs.", statusCode: 403);
        var antiforgery = http.RequestServices.GetService<IAntiforgery>()
            ?? throw new InvalidOperationException("Call services.AddRedflowDashboard() (antiforgery) to use the dashboard's actions.");
        try
        {
            await antiforgery.ValidateRequestAsync(http);
            return null;
        }
        catch (AntiforgeryValidationException)
        {
            return Results.Text("The form expired or did not come from the dashboard; reload the page and try again.", statusCode: 400);
        }
    }

    private static string Confirm(string basePath, HttpContext http, string id, string action)
    {
        var antiforgery = http.RequestServices.GetService<IAntiforgery>()
            ?? throw new InvalidOperationException("Call services.AddRedflowDashboard() (antiforgery) to use the dashboard's actions.");
        var tokens = antiforgery.GetAndStoreTokens(http);
        var what = action == "cancel" ? "cancel this run (a running run's handler is told to stop)" : "start a new run of the same workflow with the same input";
        return $"""
            <p>This will {what}: <a href="{basePath}/runs/{E(Uri.EscapeDataString(id))}"><code>{E(id)}</code></a>.</p>
            <form method="post" action="{basePath}/runs/{E(Uri.EscapeDataString(id))}/{action}">
              <input type="hidden" name="{E(tokens.FormFieldName)}" value="{E(tokens.RequestToken)}">
              <button type="submit" id="confirm">Yes, {action}</button>
              <a href="{basePath}/runs/{E(Uri.EscapeDataString(id))}">No, go back</a>
            </form>
            """;
    }

    /// <summary>Runs per page unless the query's <c>limit</c> says otherwise.</summary>
    private const int DefaultPageSize = 50;

    /// <summary>The most runs one page shows.</summary>
    private const int MaxPageSize = 500;

    /// <summary>The minutes the overview's throughput chart covers.</summary>
    private const int ChartMinutes = 10;

    private static async Task<string> OverviewAsync(string basePath, IRedflowClient client, CancellationToken ct)
    {
        var statsTask = client.GetStatsAsync(ct);
        // Finished runs by FinishedAt. The status indexes are ordered by creation, so this reads the runs created in the
        // last hour (at most 1,000 per status) and buckets those that finished in the chart's window.
        var since = DateTimeOffset.UtcNow.AddMinutes(-ChartMinutes);
        var finished = new[] { RunStatus.Succeeded, RunStatus.Failed }.Select(s =>
            client.ListRunsAsync(new ListRunsParams { Status = s, After = since.AddMinutes(-60), Limit = 1000 }, ct)).ToArray();
        var stats = await statsTask;
        var succeeded = Bucket(await finished[0], since);
        var failed = Bucket(await finished[1], since);
        var max = Math.Max(1, Enumerable.Range(0, ChartMinutes).Max(i => succeeded[i] + failed[i]));
        var chart = new StringBuilder().Append(CultureInfo.InvariantCulture, $"<svg id=\"throughput\" width=\"{ChartMinutes * 42}\" height=\"100\" role=\"img\" aria-label=\"runs finished per minute\">");
        for (var i = 0; i < ChartMinutes; i++)
        {
            var hs = 70 * succeeded[i] / max;
            var hf = 70 * failed[i] / max;
            var label = ChartMinutes - i == 1 ? "now" : $"-{ChartMinutes - i - 1}m";
            chart.Append(CultureInfo.InvariantCulture, $"<g data-minute=\"{i}\" data-succeeded=\"{succeeded[i]}\" data-failed=\"{failed[i]}\"><title>{succeeded[i]} succeeded, {failed[i]} failed</title>")
                 .Append(CultureInfo.InvariantCulture, $"<rect x=\"{i * 42}\" y=\"{75 - hs}\" width=\"36\" height=\"{hs}\" fill=\"#5b8def\"/>")
                 .Append(CultureInfo.InvariantCulture, $"<rect x=\"{i * 42}\" y=\"{75 - hs - hf}\" width=\"36\" height=\"{hf}\" fill=\"#e5534b\"/>")
                 .Append(CultureInfo.InvariantCulture, $"<text x=\"{i * 42 + 18}\" y=\"88\" font-size=\"10\" text-anchor=\"middle\">{succeeded[i] + failed[i]}</text>")
                 .Append(CultureInfo.InvariantCulture, $"<text x=\"{i * 42 + 18}\" y=\"99\" font-size=\"9\" fill=\"#7a838c\" text-anchor=\"middle\">{label}</text></g>");
        }
        chart.Append("</svg>");
        var counts = string.Join("", Enum.GetValues<RunStatus>().Select(s =>
            $"<div class=\"card\"><a href=\"{basePath}/runs?status={s}\">{Status(s)}</a><b>{stats.RunCounts.GetValueOrDefault(s)}</b></div>"));
        return $"""
            <div class="cards">{counts}</div>
            <h2>Queues</h2>
            {Table(["Queue", "Ready", "Scheduled", "Running"], stats.Queues.OrderBy(q => q.Name, StringComparer.Ordinal).Select(q => new[] { E(q.Name), $"{q.Ready}", $"{q.Scheduled}", $"{q.Running}" }))}
            <h2>Finished per minute, last {ChartMinutes} minutes <span class="muted">(blue succeeded, red failed)</span></h2>{chart}
            <h2>Workers</h2>
            {Table(["App", "Node", "Queues", "Concurrency", "Last seen"], stats.Workers.Select(w => new[] { E(w.App), E(w.Node), E(string.Join(", ", w.Queues)), $"{w.Concurrency}", Time(w.LastSeen) }))}
            <h2>Counters</h2>
            {Table(["Counter", "Value"], stats.Counters.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => new[] { E(c.Key), $"{c.Value}" }))}
            """;
    }

    /// <summary>Counts runs by the minute of <see cref="ChartMinutes"/> they finished in, oldest minute first.</summary>
    private static int[] Bucket(IEnumerable<RunRecord> runs, DateTimeOffset since)
    {
        var perMinute = new int[ChartMinutes];
        foreach (var r in runs)
            if (r.FinishedAt is { } f && f >= since) perMinute[Math.Clamp((int)(f - since).TotalMinutes, 0, ChartMinutes - 1)]++;
        return perMinute;
    }

    /// <summary>The runs page's query string: filters (workflow, status, a creation-time window) and paging.</summary>
    private sealed record RunsQuery(string? Workflow, string? Status, int Offset, int Limit, string? Before, string? After);

    private static DateTimeOffset? ParseTime(string? text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : null;

    private static async Task<string> RunsAsync(string basePath, IRedflowClient client, RunsQuery q, CancellationToken ct)
    {
        RunStatus? parsed = Enum.TryParse<RunStatus>(q.Status, ignoreCase: true, out var s) && Enum.IsDefined(s) ? s : null;
        var workflow = string.IsNullOrEmpty(q.Workflow) ? null : q.Workflow;
        var offset = Math.Max(0, q.Offset);
        var limit = Math.Clamp(q.Limit, 1, MaxPageSize);
        var workflowsTask = client.ListWorkflowsAsync(ct);
        var runs = await client.ListRunsAsync(new ListRunsParams
        {
            Workflow = workflow, Status = parsed, Offset = offset, Limit = limit, Before = ParseTime(q.Before), After = ParseTime(q.After),
        }, ct);
        var workflows = await workflowsTask;
        string Query(int o) =>
            $"?workflow={Uri.EscapeDataString(workflow ?? "")}&status={parsed}&after={Uri.EscapeDataString(q.After ?? "")}" +
            $"&before={Uri.EscapeDataString(q.Before ?? "")}&limit={limit}&offset={o}";
        var options = "<option value=\"\">all workflows</option>" + string.Join("", workflows.Select(w =>
            $"<option{(w.Name == workflow ? " selected" : "")}>{E(w.Name)}</option>"));
        var statuses = "<option value=\"\">all statuses</option>" + string.Join("", Enum.GetValues<RunStatus>().Select(x =>
            $"<option{(x == parsed ? " selected" : "")}>{x}</option>"));
        var pager = (offset > 0 ? $"<a id=\"newer\" href=\"{basePath}/runs{E(Query(Math.Max(0, offset - limit)))}\">newer</a> " : "")
                    + (runs.Count == limit ? $"<a id=\"older\" href=\"{basePath}/runs{E(Query(offset + limit))}\">older</a>" : "");
        var shown = runs.Count == 0 ? "no runs" : $"runs {offset + 1}–{offset + runs.Count}";
        return $"""
            <form method="get" action="{basePath}/runs">
              <select name="workflow">{options}</select> <select name="status">{statuses}</select>
              <input name="after" placeholder="created after (UTC, e.g. 2026-01-31 12:00)" value="{E(q.After)}">
              <input name="before" placeholder="created before (UTC)" value="{E(q.Before)}">
              <input type="hidden" name="limit" value="{limit}">
              <button type="submit" id="filter">Filter</button>
            </form>
            {Table(["Run", "Workflow", "Status", "Attempt", "Created", "Finished"], runs.Select(r => new[]
            {
                $"<a class=\"run\" href=\"{basePath}/runs/{E(Uri.EscapeDataString(r.Id))}\">{E(r.Id)}</a>", E(r.Workflow), Status(r.Status),
                $"{r.Attempt}/{r.MaxAttempts}", Time(r.CreatedAt), Time(r.FinishedAt),
            }))}
            <p><span class="muted" id="shown">{shown}</span> {pager}</p>
            """;
    }

    private static async Task<string?> RunAsync(string basePath, IRedflowClient client, string id, CancellationToken ct)
    {
        var run = await client.GetRunAsync(id, ct);
        if (run is null) return null;
        var steps = await client.GetRunStepsAsync(id, ct);
        var children = await client.ListRunsAsync(new ListRunsParams { ParentRunId = id, Limit = 100 }, ct);
        string Link(string runId) => $"<a href=\"{basePath}/runs/{E(Uri.EscapeDataString(runId))}\">{E(runId)}</a>";
        var longest = Math.Max(1, steps.Select(x => x.FinishedAt is { } f && x.StartedAt is { } st ? (f - st).TotalMilliseconds : 0).DefaultIfEmpty(0).Max());
        var actions = new StringBuilder();
        if (!(run.Status is RunStatus.Succeeded or RunStatus.Failed or RunStatus.Canceled))
            actions.Append($"<a id=\"cancel\" href=\"{basePath}/runs/{E(Uri.EscapeDataString(id))}/cancel\">Cancel…</a> ");
        actions.Append($"<a id=\"rerun\" href=\"{basePath}/runs/{E(Uri.EscapeDataString(id))}/rerun\">Rerun…</a>");
        return $"""
            <p>{actions}</p>
            {Table(["Field", "Value"], new[]
            {
                new[] { "Workflow", E(run.Workflow) }, ["Queue", E(run.Queue)], ["Status", Status(run.Status)],
                ["Attempt", $"{run.Attempt} of {run.MaxAttempts}"], ["Resumes", $"{run.Resumes}"],
                ["Created", Time(run.CreatedAt)], ["Started", Time(run.StartedAt)], ["Finished", Time(run.FinishedAt)],
                ["Parent", run.ParentRunId is { } p ? Link(p) : "-"], ["Rerun of", run.RerunOf is { } o ? Link(o) : "-"],
                ["Idempotency key", E(run.IdempotencyKey)], ["Cancel reason", E(run.CancelReason)],
            })}
            <h2>Input</h2><pre>{E(run.Input.GetRawText())}</pre>
            {(run.Output is { } output ? $"<h2>Output</h2><pre>{E(output.GetRawText())}</pre>" : "")}
            {(run.Error is { } error ? $"<h2>Error</h2><pre id=\"error\">{E(error.Type)}: {E(error.Message)}\n{E(error.StackTrace)}</pre>" : "")}
            <h2>Steps</h2>
            {Table(["Step", "Status", "Attempt", "Duration", "", "Result"], steps.Select(x =>
            {
                var ms = x.FinishedAt is { } f && x.StartedAt is { } st ? (f - st).TotalMilliseconds : 0;
                return new[]
                {
                    E(x.Name), Status(x.Status), $"{x.Attempt}", $"{ms:0} ms",
                    $"<span class=\"bar\" style=\"width:{(int)(200 * ms / longest)}px\"></span>",
                    x.Error is { } e ? E($"{e.Type}: {e.Message}") : $"<code>{E(Truncate(x.Output?.GetRawText() ?? "", 120))}</code>",
                };
            }))}
            <h2>Children</h2>
            {Table(["Run", "Workflow", "Status"], children.Select(c => new[] { Link(c.Id), E(c.Workflow), Status(c.Status) }))}
            """;
    }

    private static async Task<string> WorkflowsAsync(IRedflowClient client, CancellationToken ct)
    {
        var workflows = await client.ListWorkflowsAsync(ct);
        return Table(["Workflow", "Queue", "Max concurrency", "Max attempts", "Cron (next fire)", "Workers", "Runs"], workflows.Select(w => new[]
        {
            E(w.Name), E(w.Queue), $"{w.MaxConcurrency}", $"{w.MaxAttempts}",
            string.Join("<br>", w.Cron.Select(c => $"<code>{E(c.Expression)}</code> {E(c.Timezone)} → {Time(c.NextFireAt)}")),
            string.Join("<br>", w.Workers.Select(x => $"{E(x.App)} ({Time(x.LastSeen)})")),
            string.Join(" ", w.RunCounts.Where(c => c.Value > 0).Select(c => $"{Status(c.Key)} {c.Value}")),
        }));
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";
}
