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

        IRedflowClient Client(HttpContext http) => options.Client ?? http.RequestServices.GetService<IRedflowClient>()
            ?? throw new InvalidOperationException("Register an IRedflowClient in the services, or give RedflowDashboardOptions.Client.");

        // Explicit return types: a lambda taking only HttpContext would otherwise bind to RequestDelegate and drop its result.
        group.MapGet("/", async Task<IResult> (HttpContext http) => Page(basePath, "Overview", await OverviewAsync(Client(http), http.RequestAborted)));
        group.MapGet("/runs", async (HttpContext http, string? workflow, string? status, int? offset, string? before) =>
            Page(basePath, "Runs", await RunsAsync(basePath, Client(http), workflow, status, offset ?? 0, before, http.RequestAborted)));
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

    private static async Task<IResult?> Invalid(HttpContext http)
    {
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

    private static async Task<string> OverviewAsync(IRedflowClient client, CancellationToken ct)
    {
        var stats = await client.GetStatsAsync(ct);
        var since = DateTimeOffset.UtcNow.AddMinutes(-10);
        var recent = await client.ListRunsAsync(new ListRunsParams { Status = RunStatus.Succeeded, After = since.AddMinutes(-60), Limit = 1000 }, ct);
        var perMinute = new int[10];
        foreach (var r in recent)
            if (r.FinishedAt is { } f && f >= since) perMinute[Math.Clamp((int)(f - since).TotalMinutes, 0, 9)]++;
        var max = Math.Max(1, perMinute.Max());
        var chart = new StringBuilder("<svg width=\"420\" height=\"90\" role=\"img\" aria-label=\"runs succeeded per minute\">");
        for (var i = 0; i < 10; i++)
        {
            var h = 70 * perMinute[i] / max;
            chart.Append(CultureInfo.InvariantCulture, $"<rect x=\"{i * 42}\" y=\"{75 - h}\" width=\"36\" height=\"{h}\" fill=\"#5b8def\"><title>{perMinute[i]} runs</title></rect>")
                 .Append(CultureInfo.InvariantCulture, $"<text x=\"{i * 42 + 18}\" y=\"88\" font-size=\"10\" text-anchor=\"middle\">{perMinute[i]}</text>");
        }
        chart.Append("</svg>");
        var counts = string.Join("", Enum.GetValues<RunStatus>().Select(s =>
            $"<div class=\"card\">{Status(s)}<b>{stats.RunCounts.GetValueOrDefault(s)}</b></div>"));
        return $"""
            <div class="cards">{counts}</div>
            <h2>Queues</h2>
            {Table(["Queue", "Ready", "Scheduled", "Running"], stats.Queues.Select(q => new[] { E(q.Name), $"{q.Ready}", $"{q.Scheduled}", $"{q.Running}" }))}
            <h2>Succeeded per minute, last 10 minutes</h2>{chart}
            <h2>Workers</h2>
            {Table(["App", "Node", "Queues", "Concurrency", "Last seen"], stats.Workers.Select(w => new[] { E(w.App), E(w.Node), E(string.Join(", ", w.Queues)), $"{w.Concurrency}", Time(w.LastSeen) }))}
            <h2>Counters</h2>
            {Table(["Counter", "Value"], stats.Counters.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => new[] { E(c.Key), $"{c.Value}" }))}
            """;
    }

    private static async Task<string> RunsAsync(string basePath, IRedflowClient client, string? workflow, string? status, int offset, string? before, CancellationToken ct)
    {
        const int PageSize = 50;
        RunStatus? parsed = Enum.TryParse<RunStatus>(status, ignoreCase: true, out var s) ? s : null;
        DateTimeOffset? beforeTime = DateTimeOffset.TryParse(before, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var b) ? b : null;
        var workflows = await client.ListWorkflowsAsync(ct);
        var runs = await client.ListRunsAsync(new ListRunsParams
        {
            Workflow = string.IsNullOrEmpty(workflow) ? null : workflow, Status = parsed, Offset = Math.Max(0, offset), Limit = PageSize, Before = beforeTime,
        }, ct);
        string Query(int o) => $"?workflow={Uri.EscapeDataString(workflow ?? "")}&status={parsed}&before={Uri.EscapeDataString(before ?? "")}&offset={o}";
        var options = "<option value=\"\">all workflows</option>" + string.Join("", workflows.Select(w =>
            $"<option{(w.Name == workflow ? " selected" : "")}>{E(w.Name)}</option>"));
        var statuses = "<option value=\"\">all statuses</option>" + string.Join("", Enum.GetValues<RunStatus>().Select(x =>
            $"<option{(x == parsed ? " selected" : "")}>{x}</option>"));
        var pager = (offset > 0 ? $"<a id=\"newer\" href=\"{basePath}/runs{Query(Math.Max(0, offset - PageSize))}\">newer</a> " : "")
                    + (runs.Count == PageSize ? $"<a id=\"older\" href=\"{basePath}/runs{Query(offset + PageSize)}\">older</a>" : "");
        return $"""
            <form method="get" action="{basePath}/runs">
              <select name="workflow">{options}</select> <select name="status">{statuses}</select>
              <input name="before" placeholder="before (UTC, e.g. 2026-01-31 12:00)" value="{E(before)}">
              <button type="submit" id="filter">Filter</button>
            </form>
            {Table(["Run", "Workflow", "Status", "Attempt", "Created", "Finished"], runs.Select(r => new[]
            {
                $"<a href=\"{basePath}/runs/{E(Uri.EscapeDataString(r.Id))}\">{E(r.Id)}</a>", E(r.Workflow), Status(r.Status),
                $"{r.Attempt}/{r.MaxAttempts}", Time(r.CreatedAt), Time(r.FinishedAt),
            }))}
            <p>{pager}</p>
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
