using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using static Redflow.Dashboard.Html;

namespace Redflow.Dashboard;

/// <summary>The dashboard's pages and actions, for one mount point and its options.</summary>
internal sealed class Ui(string basePath, RedflowDashboardOptions options)
{
    /// <summary>The actions on one run, each a confirmation page (GET) and a POST.</summary>
    public static readonly string[] Actions = ["cancel", "rerun", "resume", "signal"];

    /// <summary>The actions on one cron trigger of a workflow, each a confirmation page (GET) and a POST.</summary>
    public static readonly string[] CronActions = ["pause", "resume", "trigger"];

    /// <summary>The most held-back keys a workflow's meta lists (<see cref="WorkflowMeta.HeldBackKeys"/>).</summary>
    private const int HeldBackShown = 10;

    /// <summary>Runs per page unless the query's <c>limit</c> says otherwise.</summary>
    private const int DefaultPageSize = 50;

    /// <summary>The most runs one page shows.</summary>
    private const int MaxPageSize = 500;

    /// <summary>The most runs one bulk action takes.</summary>
    private const int MaxBulk = 1000;

    /// <summary>The minutes the overview's throughput chart covers.</summary>
    private const int ChartMinutes = 30;

    /// <summary>The most finished runs per status a workflow's statistics read (the newest of the window).</summary>
    private const int StatsSample = 1000;

    private const string HtmlType = "text/html; charset=utf-8";

    private IRedflowClient Client(HttpContext http) => options.Client ?? http.RequestServices.GetService<IRedflowClient>()
        ?? throw new InvalidOperationException("Register an IRedflowClient in the services, or give RedflowDashboardOptions.Client.");

    private int RefreshSeconds => (int)Math.Ceiling(options.RefreshInterval.TotalSeconds);

    /// <summary>A page; a GET page that shows state refreshes itself when <paramref name="live"/>.</summary>
    public IResult Html(HttpContext http, string title, string body, int status = 200, string? notice = null, bool live = false) =>
        Results.Content(Page(basePath, title, body, live ? RefreshSeconds : 0, notice), HtmlType, statusCode: status);

    /// <summary>
    /// Runs a request with a bound on the time Redis may take: a filter that does not fit answers 400 saying what is
    /// wrong; Redis unreachable or too slow answers 503 "Redis is unreachable" within <see cref="RedflowDashboardOptions.RedisTimeout"/>.
    /// </summary>
    public async Task<object?> GuardAsync(HttpContext http, Func<Task<object?>> next)
    {
        var aborted = http.RequestAborted;
        var bound = HttpMethods.IsPost(http.Request.Method) ? options.RedisTimeout * 10 : options.RedisTimeout; // a bulk action makes many calls
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        timeout.CancelAfter(bound);
        http.RequestAborted = timeout.Token;
        try
        {
            return await next().WaitAsync(bound, aborted);
        }
        catch (BadQueryException ex)
        {
            return Html(http, "Bad request", $"<p id=\"problem\">{E(ex.Message)}</p>", 400);
        }
        catch (ArgumentException ex)
        {
            return Html(http, "Bad request", $"<p id=\"problem\">{E(ex.Message)}</p>", 400);
        }
        catch (Exception ex) when (!aborted.IsCancellationRequested && ex is OperationCanceledException or TimeoutException or RedisConnectionException or RedisTimeoutException)
        {
            var why = ex is RedisConnectionException rc ? Short(rc) : $"no answer within {Duration(bound)}";
            return Html(http, "Redis is unreachable", $"<p id=\"problem\">Redis is unreachable ({E(why)}). The page will work again once Redis answers; reload it then.</p>", 503);
        }
        finally
        {
            http.RequestAborted = aborted;
        }
    }

    private static string Short(RedisConnectionException ex) => ex.FailureType switch
    {
        ConnectionFailureType.AuthenticationFailure => "authentication failed",
        ConnectionFailureType.UnableToConnect or ConnectionFailureType.UnableToResolvePhysicalConnection => "connection refused",
        ConnectionFailureType.SocketFailure or ConnectionFailureType.SocketClosed => "connection lost",
        _ => "not connected",
    };

    // ---- query parsing -------------------------------------------------------------------------------

    private static string? Str(HttpContext http, string name) =>
        http.Request.Query[name] is { Count: > 0 } v && !string.IsNullOrWhiteSpace(v[0]) ? v[0]!.Trim() : null;

    internal static RunStatus? ParseStatus(string? text)
    {
        if (text is null) return null;
        if (Enum.TryParse<RunStatus>(text, ignoreCase: true, out var s) && Enum.IsDefined(s) && !int.TryParse(text, out _)) return s;
        throw new BadQueryException($"status '{text}' is not a run status: use one of {string.Join(", ", Enum.GetNames<RunStatus>())}.");
    }

    internal static DateTimeOffset? ParseTime(string name, string? text)
    {
        if (text is null) return null;
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)) return t;
        throw new BadQueryException($"{name} '{text}' is not a time: use UTC such as 2026-01-31 12:00, or ISO 8601 such as 2026-01-31T12:00:00+01:00.");
    }

    private static int ParseInt(string name, string? text, int fallback, int min, int max)
    {
        if (text is null) return fallback;
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max) return n;
        throw new BadQueryException($"{name} '{text}' is not a whole number from {min} to {max}.");
    }

    private static TimeSpan? ParseWindow(string? text) => text switch
    {
        null => null,
        "15m" => TimeSpan.FromMinutes(15),
        "1h" => TimeSpan.FromHours(1),
        "24h" => TimeSpan.FromHours(24),
        "7d" => TimeSpan.FromDays(7),
        _ => throw new BadQueryException($"window '{text}' is not one of 15m, 1h, 24h, 7d."),
    };

    // ---- overview ------------------------------------------------------------------------------------

    public async Task<IResult> OverviewAsync(HttpContext http)
    {
        var client = Client(http);
        var ct = http.RequestAborted;
        var statsTask = client.GetStatsAsync(ct);
        // Finished runs by FinishedAt. The status indexes are ordered by creation, so this reads the runs created in the
        // chart's window and the hour before (at most 1,000 per status) and buckets those that finished in the window.
        var now = DateTimeOffset.UtcNow;
        var since = now.AddMinutes(-ChartMinutes);
        var finished = new[] { RunStatus.Succeeded, RunStatus.Failed }.Select(s =>
            client.ListRunsAsync(new ListRunsParams { Status = s, After = since.AddMinutes(-60), Limit = 1000 }, ct)).ToArray();
        var stats = await statsTask;
        var succeeded = Bucket(await finished[0], since);
        var failed = Bucket(await finished[1], since);
        var counts = string.Join("", Enum.GetValues<RunStatus>().Select(s =>
            $"<div class=\"card\"><a href=\"{basePath}/runs?status={s}\">{Status(s)}</a><b>{stats.RunCounts.GetValueOrDefault(s)}</b></div>"));
        var body = $"""
            <div id="overview" data-live>
            <div class="cards">{counts}</div>
            <h2>Finished per minute, last {ChartMinutes} minutes <span class="muted">(green succeeded, red failed)</span></h2>{Chart(succeeded, failed)}
            <div class="grid"><div>
            <h2>Queues <a class="muted" href="{basePath}/queues">details</a></h2>
            {Table(["Queue", "Ready", "Scheduled", "Running"], stats.Queues.OrderBy(q => q.Name, StringComparer.Ordinal).Select(q => new[] { E(q.Name), $"{q.Ready}", $"{q.Scheduled}", $"{q.Running}" }))}
            </div><div>
            <h2>Workers <a class="muted" href="{basePath}/workers">details</a></h2>
            {Table(["App", "Node", "Queues", "Concurrency", "Last seen"], stats.Workers.Select(w => new[] { E(w.App), E(w.Node), E(string.Join(", ", w.Queues)), $"{w.Concurrency}", Time(w.LastSeen, now) }))}
            </div></div>
            <h2>Counters</h2>
            {Table(["Counter", "Value"], stats.Counters.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => new[] { E(c.Key), $"{c.Value}" }))}
            </div>
            """;
        return Html(http, "Overview", body, live: true);
    }

    private static string Chart(int[] succeeded, int[] failed)
    {
        const int w = 28, h = 120;
        var max = Math.Max(1, Enumerable.Range(0, ChartMinutes).Max(i => succeeded[i] + failed[i]));
        var chart = new StringBuilder().Append(CultureInfo.InvariantCulture,
            $"<svg id=\"throughput\" viewBox=\"0 0 {ChartMinutes * w + 40} {h + 30}\" width=\"100%\" style=\"max-width:{ChartMinutes * w + 40}px\" role=\"img\" aria-label=\"runs finished per minute\">");
        chart.Append(CultureInfo.InvariantCulture, $"<text x=\"0\" y=\"10\" font-size=\"10\">{max}</text><text x=\"0\" y=\"{h}\" font-size=\"10\">0</text>");
        for (var i = 0; i < ChartMinutes; i++)
        {
            var hs = h * succeeded[i] / max;
            var hf = h * failed[i] / max;
            var x = 40 + i * w;
            var label = ChartMinutes - i == 1 ? "now" : $"-{ChartMinutes - i - 1}m";
            chart.Append(CultureInfo.InvariantCulture, $"<g data-minute=\"{i}\" data-succeeded=\"{succeeded[i]}\" data-failed=\"{failed[i]}\"><title>{label}: {succeeded[i]} succeeded, {failed[i]} failed</title>")
                 .Append(CultureInfo.InvariantCulture, $"<rect x=\"{x}\" y=\"0\" width=\"{w - 4}\" height=\"{h}\" fill=\"transparent\"/>")
                 .Append(CultureInfo.InvariantCulture, $"<rect x=\"{x}\" y=\"{h - hs}\" width=\"{w - 4}\" height=\"{hs}\" rx=\"2\" fill=\"var(--s-succ)\"/>")
                 .Append(CultureInfo.InvariantCulture, $"<rect x=\"{x}\" y=\"{h - hs - hf}\" width=\"{w - 4}\" height=\"{hf}\" rx=\"2\" fill=\"var(--bad)\"/>");
            if (i % 5 == 4 || i == ChartMinutes - 1)
                chart.Append(CultureInfo.InvariantCulture, $"<text x=\"{x + (w - 4) / 2}\" y=\"{h + 16}\" font-size=\"10\" text-anchor=\"middle\">{label}</text>");
            chart.Append("</g>");
        }
        return chart.Append("</svg>").ToString();
    }

    /// <summary>Counts runs by the minute of <see cref="ChartMinutes"/> they finished in, oldest minute first.</summary>
    private static int[] Bucket(IEnumerable<RunRecord> runs, DateTimeOffset since)
    {
        var perMinute = new int[ChartMinutes];
        foreach (var r in runs)
            if (r.FinishedAt is { } f && f >= since) perMinute[Math.Clamp((int)(f - since).TotalMinutes, 0, ChartMinutes - 1)]++;
        return perMinute;
    }

    // ---- runs ----------------------------------------------------------------------------------------

    public async Task<IResult> RunsAsync(HttpContext http)
    {
        var client = Client(http);
        var ct = http.RequestAborted;
        var now = DateTimeOffset.UtcNow;
        var workflow = Str(http, "workflow");
        var status = ParseStatus(Str(http, "status"));
        var queue = Str(http, "queue");
        var search = Str(http, "q");
        var window = Str(http, "window");
        var after = ParseTime("after", Str(http, "after")) ?? (ParseWindow(window) is { } span ? now - span : null);
        var before = ParseTime("before", Str(http, "before"));
        var limit = ParseInt("limit", Str(http, "limit"), DefaultPageSize, 1, MaxPageSize);
        var offset = ParseInt("offset", Str(http, "offset"), 0, 0, 10_000_000);
        var workflowsTask = client.ListWorkflowsAsync(ct);
        IReadOnlyList<RunRecord> runs;
        if (search is not null)
        {
            // A run id, an idempotency key or a parent run id: whatever matches.
            var byId = client.GetRunAsync(search, ct);
            var byKey = client.FindRunsByIdempotencyKeyAsync(search, ct);
            var children = client.ListRunsAsync(new ListRunsParams { ParentRunId = search, Limit = limit }, ct);
            var keyed = await Task.WhenAll((await byKey).Select(id => client.GetRunAsync(id, ct)));
            runs = new[] { await byId }.Concat(keyed).Concat(await children).OfType<RunRecord>()
                .DistinctBy(r => r.Id).Where(r => (workflow is null || r.Workflow == workflow) && (status is null || r.Status == status)
                                                  && (queue is null || r.Queue == queue)).ToList();
        }
        else
        {
            runs = await client.ListRunsAsync(new ListRunsParams
            {
                Workflow = workflow, Status = status, Queue = queue, Offset = offset, Limit = limit, Before = before, After = after,
            }, ct);
        }
        var workflows = await workflowsTask;
        var queues = workflows.Select(w => w.Queue).Append(queue).OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        string Query(int o) =>
            $"?q={Uri.EscapeDataString(search ?? "")}&workflow={Uri.EscapeDataString(workflow ?? "")}&status={status}&queue={Uri.EscapeDataString(queue ?? "")}" +
            $"&window={Uri.EscapeDataString(window ?? "")}&after={Uri.EscapeDataString(Str(http, "after") ?? "")}&before={Uri.EscapeDataString(Str(http, "before") ?? "")}&limit={limit}&offset={o}";
        string Options(string all, IEnumerable<string> values, string? selected) => $"<option value=\"\">{all}</option>" +
            string.Join("", values.Select(v => $"<option{(v == selected ? " selected" : "")}>{E(v)}</option>"));
        var windows = string.Join("", new[] { ("", "any time"), ("15m", "last 15 min"), ("1h", "last hour"), ("24h", "last day"), ("7d", "last 7 days") }
            .Select(x => $"<option value=\"{x.Item1}\"{(x.Item1 == (window ?? "") ? " selected" : "")}>{x.Item2}</option>"));
        var pager = search is not null ? "" :
            (offset > 0 ? $"<a id=\"newer\" class=\"button\" href=\"{basePath}/runs{E(Query(Math.Max(0, offset - limit)))}\">← newer</a> " : "")
            + (runs.Count == limit ? $"<a id=\"older\" class=\"button\" href=\"{basePath}/runs{E(Query(offset + limit))}\">older →</a>" : "");
        var shown = runs.Count == 0 ? "no runs" : search is not null ? $"{runs.Count} matching" : $"runs {offset + 1}–{offset + runs.Count}";
        var allLinks = new StringBuilder();
        if (!options.ReadOnly && workflow is not null && status is not null && search is null)
        {
            var scope = $"workflow={Uri.EscapeDataString(workflow)}&status={status}";
            allLinks.Append($"<a class=\"button\" id=\"rerun-all\" href=\"{basePath}/bulk?action=rerun&{E(scope)}\">Rerun all {status.Value.ToString().ToLowerInvariant()} of {E(workflow)}…</a>");
            if (status is RunStatus.Failed or RunStatus.Canceled)
                allLinks.Append($"<a class=\"button\" id=\"resume-all\" href=\"{basePath}/bulk?action=resume&{E(scope)}\">Resume all {status.Value.ToString().ToLowerInvariant()} of {E(workflow)}…</a>");
            if (!IsTerminal(status.Value))
                allLinks.Append($"<a class=\"button danger\" id=\"cancel-all\" href=\"{basePath}/bulk?action=cancel&{E(scope)}\">Cancel all {status.Value.ToString().ToLowerInvariant()} of {E(workflow)}…</a>");
        }
        var select = !options.ReadOnly;
        var headers = (select ? new[] { "<input type=\"checkbox\" id=\"select-all\" title=\"select all\" onclick=\"document.querySelectorAll('input[name=id]').forEach(function(c){c.checked=this.checked}.bind(this))\">" } : [])
            .Concat(["Run", "Workflow", "Queue", "Status", "Attempt", "Parent", "Created", "Duration"]).ToArray();
        var table = Table(headers, runs.Select(r => (select ? new[] { $"<input type=\"checkbox\" name=\"id\" value=\"{E(r.Id)}\">" } : []).Concat(new[]
        {
            $"<a class=\"run\" href=\"{basePath}/runs/{U(r.Id)}\">{E(r.Id)}</a>", $"<a href=\"{basePath}/workflows/{U(r.Workflow)}\">{E(r.Workflow)}</a>", E(r.Queue), Status(r.Status),
            $"{r.Attempt}/{r.MaxAttempts}", r.ParentRunId is { } p ? $"<a href=\"{basePath}/runs/{U(p)}\">{E(p)}</a>" : "-", Time(r.CreatedAt, now), RunDuration(r, now),
        }).ToArray()), "runs");
        var body = $"""
            <form class="filters" method="get" action="{basePath}/runs">
              <input name="q" size="28" placeholder="run id, idempotency key or parent" value="{E(search)}">
              <select name="workflow">{Options("all workflows", workflows.Select(w => w.Name), workflow)}</select>
              <select name="status">{Options("all statuses", Enum.GetNames<RunStatus>(), status?.ToString())}</select>
              <select name="queue">{Options("all queues", queues, queue)}</select>
              <select name="window">{windows}</select>
              <input name="after" size="18" placeholder="created after (UTC)" value="{E(Str(http, "after"))}">
              <input name="before" size="18" placeholder="created before (UTC)" value="{E(Str(http, "before"))}">
              <input type="hidden" name="limit" value="{limit}">
              <button type="submit" id="filter">Filter</button> <a href="{basePath}/runs">clear</a>
            </form>
            <form method="get" action="{basePath}/bulk" id="bulk">
            {(select ? $"<div class=\"actions\"><button name=\"action\" value=\"rerun\" id=\"rerun-selected\">Rerun selected…</button><button name=\"action\" value=\"resume\" id=\"resume-selected\">Resume selected…</button><button name=\"action\" value=\"cancel\" id=\"cancel-selected\" class=\"danger\">Cancel selected…</button>{allLinks}</div>" : "")}
            <div id="runs-live" data-live>{table}
            <p><span class="muted" id="shown">{shown}</span> {pager}</p></div>
            </form>
            """;
        return Html(http, "Runs", body, live: true);
    }

    private static bool IsTerminal(RunStatus s) => s is RunStatus.Succeeded or RunStatus.Failed or RunStatus.Canceled;

    private static string RunDuration(RunRecord r, DateTimeOffset now) => r.StartedAt is { } s
        ? (r.FinishedAt is { } f ? Duration(f - s) : IsTerminal(r.Status) ? "-" : $"<span class=\"muted\">{Duration(now - s)} so far</span>")
        : "-";

    // ---- a run ---------------------------------------------------------------------------------------

    public async Task<IResult> RunAsync(HttpContext http, string id)
    {
        var client = Client(http);
        var ct = http.RequestAborted;
        var run = await client.GetRunAsync(id, ct);
        if (run is null) return NotFound(http, id);
        var now = DateTimeOffset.UtcNow;
        var stepsTask = client.GetRunStepsAsync(id, ct);
        var childrenTask = client.ListRunsAsync(new ListRunsParams { ParentRunId = id, Limit = 100 }, ct);
        var leaseTask = run.Status == RunStatus.Running ? client.GetRunLeaseAsync(id, ct) : Task.FromResult<RunLease?>(null);
        var attemptsTask = run.Attempt > 1 ? client.GetFailedAttemptsAsync(id, ct) : Task.FromResult<IReadOnlyList<FailedAttempt>>([]);
        var steps = await stepsTask;
        var attempts = await attemptsTask;
        var children = await childrenTask;
        var lease = await leaseTask;
        string Link(string runId) => $"<a href=\"{basePath}/runs/{U(runId)}\">{E(runId)}</a>";
        var actions = new StringBuilder();
        if (!options.ReadOnly)
        {
            if (!IsTerminal(run.Status)) actions.Append($"<a id=\"cancel\" href=\"{basePath}/runs/{U(id)}/cancel\">Cancel…</a> ");
            actions.Append($"<a id=\"rerun\" href=\"{basePath}/runs/{U(id)}/rerun\">Rerun…</a> ");
            if (run.Status is RunStatus.Failed or RunStatus.Canceled) actions.Append($"<a id=\"resume\" href=\"{basePath}/runs/{U(id)}/resume\">Resume…</a> ");
            if (!IsTerminal(run.Status)) actions.Append($"<a id=\"signal\" href=\"{basePath}/runs/{U(id)}/signal\">Send a signal…</a>");
        }
        var current = "";
        if (run.Status == RunStatus.Running)
        {
            var last = steps.Where(s => s.Attempt == run.Attempt).MaxBy(s => s.FinishedAt ?? DateTimeOffset.MinValue);
            current = $"""
                <p class="notice" id="current">Running attempt {run.Attempt}{(lease is null ? "" : $" on <b>{E(lease.App ?? "?")}</b> (node <code>{E(lease.Node)}</code>), lease until {Time(lease.Deadline, now)}")};
                {(lease?.CurrentStep is { } step
                    ? $"its current step is <b>{E(step)}</b> (as of the last lease renewal){(last is null ? "" : $"; the last recorded step is <b>{E(last.Name)}</b> (recorded {Time(last.FinishedAt, now)})")}"
                    : last is null ? "no step recorded yet in this attempt (the handler is in its first step, or between steps)" : $"the current step comes after <b>{E(last.Name)}</b> (recorded {Time(last.FinishedAt, now)})")}.</p>
                """;
        }
        var body = $"""
            <div class="actions">{actions}</div>
            <div id="run-live" data-live>
            {current}
            {Table(["Field", "Value"], new[]
            {
                new[] { "Workflow", E(run.Workflow) }, ["Queue", E(run.Queue)], ["Status", Status(run.Status)],
                ["Flow-control key", run.Key is { } fk ? $"<code>{E(fk)}</code>" : "-"], ["Priority", run.Priority.ToString(CultureInfo.InvariantCulture)],
                ["Attempt", $"{run.Attempt} of {run.MaxAttempts}"], ["Resumes", $"{run.Resumes}"],
                ["Created", Time(run.CreatedAt, now)], ["Available at", Time(run.AvailableAt, now)], ["Started", Time(run.StartedAt, now)], ["Finished", Time(run.FinishedAt, now)],
                ["Duration", RunDuration(run, now)],
                ["Worker", lease is null ? "-" : $"{E(lease.App ?? "?")} ({E(lease.Node)})"], ["Lease until", lease is null ? "-" : Time(lease.Deadline, now)],
                ["Parent", run.ParentRunId is { } p ? Link(p) : "-"], ["Rerun of", run.RerunOf is { } o ? Link(o) : "-"],
                ["Idempotency key", E(run.IdempotencyKey)], ["Cancel reason", E(run.CancelReason)],
            })}
            {(run.Waits.Count == 0 ? "" : $"<h2>Waiting on</h2>{Table(["Step", "Kind", "Name", "Key", "Until"], run.Waits.Select(w => new[] { E(w.Step), E(w.Kind.ToString().ToLowerInvariant()), w.Kind == WaitKind.Child && w.Name is { } c ? Link(c) : E(w.Name), E(w.Key), w.Until is { } u ? Time(u, now) : "-" }), "waits")}")}
            <h2>Timeline</h2>
            {Timeline(run, steps, children, now)}
            <h2>Input</h2>{Json(run.Input, "input")}
            {(run.Output is { } output ? $"<h2>Output</h2>{Json(output, "output")}" : "")}
            {(run.Error is { } error ? $"<h2>Error</h2><pre id=\"error\">{E(error.Type)}: {E(error.Message)}\n{E(error.StackTrace)}</pre>" : "")}
            {(attempts.Count == 0 ? "" : $"<h2>Failed attempts</h2>{Table(["Attempt", "Started", "Failed", "Worker", "Error"], attempts.Select(a => new[] { $"{a.Attempt}", Time(a.StartedAt, now), Time(a.FailedAt, now), a.Worker is { } node ? $"<code>{E(node)}</code>" : "-", $"<details><summary><code>{E($"{a.Error.Type}: {a.Error.Message}")}</code></summary><pre>{E(a.Error.StackTrace)}</pre></details>" }), "attempts")}")}
            <h2>Steps</h2>
            {Table(["Step", "Status", "Attempt", "Started", "Duration", "Result"], steps.Select(x => new[]
            {
                E(x.Name), Status(x.Status), $"{x.Attempt}", Time(x.StartedAt, now),
                x.FinishedAt is { } f && x.StartedAt is { } st ? Duration(f - st) : "-",
                x.Error is { } e ? $"<code>{E($"{e.Type}: {e.Message}")}</code>" : x.Output is { } o ? Json(o) : "-",
            }), "steps")}
            <h2>Children</h2>
            {Table(["Run", "Workflow", "Status", "Created", "Duration"], children.Select(c => new[] { Link(c.Id), E(c.Workflow), Status(c.Status), Time(c.CreatedAt, now), RunDuration(c, now) }))}
            </div>
            """;
        return Html(http, $"Run {id}", body, live: !IsTerminal(run.Status));
    }

    /// <summary>Steps and children on one time axis, from the run's start to its end (or now).</summary>
    private static string Timeline(RunRecord run, IReadOnlyList<StepRecord> steps, IReadOnlyList<RunRecord> children, DateTimeOffset now)
    {
        var spans = new List<(string Label, string Class, DateTimeOffset Start, DateTimeOffset End, string Title)>();
        foreach (var s in steps)
            if (s.StartedAt is { } a)
                spans.Add(($"{s.Name}", s.Status.ToString().ToLowerInvariant(), a, s.FinishedAt ?? a, $"attempt {s.Attempt}"));
        foreach (var c in children)
            spans.Add(($"↳ {c.Workflow}", "child", c.StartedAt ?? c.CreatedAt, c.FinishedAt ?? (IsTerminal(c.Status) ? c.CreatedAt : now), $"child {c.Id}, {c.Status}"));
        if (run.StartedAt is null && spans.Count == 0) return "<p class=\"muted\" id=\"timeline\">Not started yet.</p>";
        var start = new[] { run.StartedAt ?? now }.Concat(spans.Select(s => s.Start)).Min();
        var end = new[] { run.FinishedAt ?? (IsTerminal(run.Status) ? start : now) }.Concat(spans.Select(s => s.End)).Max();
        var total = Math.Max(1, (end - start).TotalMilliseconds);
        string Pct(double ms) => (100 * ms / total).ToString("0.##", CultureInfo.InvariantCulture);
        var sb = new StringBuilder("<div class=\"tl\" id=\"timeline\">");
        void Row(string label, string cls, DateTimeOffset a, DateTimeOffset b, string title)
        {
            var d = b - a;
            sb.Append("<div class=\"tl-row\"><span class=\"tl-label\" title=\"").Append(E(label)).Append("\">").Append(E(label)).Append("</span>")
              .Append("<div class=\"tl-track\"><div class=\"tl-bar ").Append(cls).Append("\" style=\"left:").Append(Pct((a - start).TotalMilliseconds))
              .Append("%;width:").Append(Pct(d.TotalMilliseconds)).Append("%\" title=\"").Append(E($"{title}: {Utc(a)} + {Duration(d)}")).Append("\"></div></div>")
              .Append("<span class=\"muted\">").Append(Duration(d)).Append("</span></div>");
        }
        Row("run", run.Status.ToString().ToLowerInvariant(), run.StartedAt ?? start, run.FinishedAt ?? end, $"run, {run.Status}");
        foreach (var s in spans.OrderBy(s => s.Start)) Row(s.Label, s.Class, s.Start, s.End, s.Title);
        sb.Append("<div class=\"tl-axis\"><span></span><div><span>").Append(E(Utc(start))).Append("</span><span>+").Append(Duration(TimeSpan.FromMilliseconds(total / 2)))
          .Append("</span><span>+").Append(Duration(TimeSpan.FromMilliseconds(total))).Append("</span></div><span></span></div>");
        return sb.Append("</div>").ToString();
    }

    private IResult NotFound(HttpContext http, string id) =>
        Html(http, "Not found", $"<p id=\"problem\">Run <code>{E(id)}</code> does not exist (or its retention has passed).</p>", 404);

    // ---- workflows -----------------------------------------------------------------------------------

    public async Task<IResult> WorkflowsAsync(HttpContext http)
    {
        var now = DateTimeOffset.UtcNow;
        var workflows = await Client(http).ListWorkflowsAsync(http.RequestAborted);
        var body = Table(["Workflow", "Queue", "Max concurrency", "Max attempts", "Flow control", "Runs", "Cron (next fire)", "Workers"], workflows.Select(w => new[]
        {
            $"<a href=\"{basePath}/workflows/{U(w.Name)}\">{E(w.Name)}</a>", E(w.Queue), $"{w.MaxConcurrency}", $"{w.MaxAttempts}", FlowSummary(w),
            string.Join(" ", w.RunCounts.Where(c => c.Value > 0).Select(c => $"<a href=\"{basePath}/runs?workflow={U(w.Name)}&amp;status={c.Key}\">{Status(c.Key)} {c.Value}</a>")),
            string.Join("<br>", w.Cron.Select(c => $"<code>{E(c.Expression)}</code> {E(c.Timezone)} → {(c.Paused ? "<span class=\"st waiting\">Paused</span>" : NextFire(c))}")),
            string.Join("<br>", w.Workers.Select(x => $"{E(x.App)} ({Time(x.LastSeen, now)})")),
        }), "workflows");
        return Html(http, "Workflows", $"<div id=\"workflows-live\" data-live>{body}</div>", live: true);
    }

    /// <summary>A trigger's next fire time in its own time zone, and in UTC.</summary>
    private static string NextFire(CronTriggerInfo c)
    {
        if (c.NextFireAt is not { } next) return "-";
        var utc = $"{next.ToUniversalTime():yyyy-MM-dd HH:mm:ss} UTC";
        if (c.Timezone is "UTC" or "Etc/UTC" || !TimeZoneInfo.TryFindSystemTimeZoneById(c.Timezone, out var zone)) return $"<span class=\"next\">{utc}</span>";
        var local = TimeZoneInfo.ConvertTime(next, zone);
        return $"<span class=\"next\">{local:yyyy-MM-dd HH:mm:ss} {E(c.Timezone)} (UTC{local:zzz})</span> <span class=\"muted\">= {utc}</span>";
    }

    public async Task<IResult> WorkflowAsync(HttpContext http, string name)
    {
        var client = Client(http);
        var ct = http.RequestAborted;
        var now = DateTimeOffset.UtcNow;
        var meta = await client.GetWorkflowMetaAsync(name, ct);
        if (meta is null) return Html(http, "Not found", $"<p id=\"problem\">Workflow <code>{E(name)}</code> is not registered.</p>", 404);
        var day = now.AddDays(-1);
        var succeededTask = client.ListRunsAsync(new ListRunsParams { Workflow = name, Status = RunStatus.Succeeded, After = day, Limit = StatsSample }, ct);
        var failedTask = client.ListRunsAsync(new ListRunsParams { Workflow = name, Status = RunStatus.Failed, After = day, Limit = StatsSample }, ct);
        var recentTask = client.ListRunsAsync(new ListRunsParams { Workflow = name, Limit = 10 }, ct);
        var succeeded = await succeededTask;
        var failed = await failedTask;
        var recent = await recentTask;
        string StatsRow(string label, TimeSpan span)
        {
            var from = now - span;
            var ok = succeeded.Where(r => r.FinishedAt >= from).ToList();
            var bad = failed.Count(r => r.FinishedAt >= from);
            var durations = ok.Concat(failed.Where(r => r.FinishedAt >= from)).Where(r => r.StartedAt is not null && r.FinishedAt is not null)
                .Select(r => (r.FinishedAt!.Value - r.StartedAt!.Value).TotalMilliseconds).Order().ToArray();
            var finished = ok.Count + bad;
            var rate = finished == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{100.0 * ok.Count / finished:0.#} %");
            return $"<tr><td>{label}</td><td>{finished}</td><td>{ok.Count}</td><td>{bad}</td><td class=\"rate\">{rate}</td><td>{Percentile(durations, 0.5)}</td><td>{Percentile(durations, 0.95)}</td></tr>";
        }
        var counts = string.Join("", Enum.GetValues<RunStatus>().Select(s =>
            $"<div class=\"card\"><a href=\"{basePath}/runs?workflow={U(name)}&amp;status={s}\">{Status(s)}</a><b>{meta.RunCounts.GetValueOrDefault(s)}</b></div>"));
        var bulk = new StringBuilder();
        if (!options.ReadOnly)
        {
            if (meta.RunCounts.GetValueOrDefault(RunStatus.Failed) > 0)
            {
                bulk.Append($"<a class=\"button\" id=\"rerun-all-failed\" href=\"{basePath}/bulk?action=rerun&amp;workflow={U(name)}&amp;status=Failed\">Rerun all failed…</a>");
                bulk.Append($"<a class=\"button\" id=\"resume-all-failed\" href=\"{basePath}/bulk?action=resume&amp;workflow={U(name)}&amp;status=Failed\">Resume all failed…</a>");
            }
            foreach (var s in new[] { RunStatus.Queued, RunStatus.Scheduled })
                if (meta.RunCounts.GetValueOrDefault(s) > 0)
                    bulk.Append($"<a class=\"button danger\" href=\"{basePath}/bulk?action=cancel&amp;workflow={U(name)}&amp;status={s}\">Cancel all {s.ToString().ToLowerInvariant()}…</a>");
        }
        var body = $"""
            <div class="actions">{bulk}<a class="button" href="{basePath}/runs?workflow={U(name)}">All runs</a></div>
            <div id="workflow-live" data-live>
            <div class="cards">{counts}</div>
            <h2>Finished runs <span class="muted">(by finish time, of runs created in the last day; at most {StatsSample:N0} per status)</span></h2>
            <table id="stats"><thead><tr><th>Window</th><th>Finished</th><th>Succeeded</th><th>Failed</th><th>Success rate</th><th>p50 duration</th><th>p95 duration</th></tr></thead><tbody>
            {StatsRow("last hour", TimeSpan.FromHours(1))}{StatsRow("last day", TimeSpan.FromDays(1))}
            </tbody></table>
            <div class="grid"><div>
            <h2>Options</h2>
            {Table(["Option", "Value"], [["Queue", E(meta.Queue)], ["Max concurrency", $"{meta.MaxConcurrency}"], ["Max attempts", $"{meta.MaxAttempts}"]])}
            </div><div>
            <h2>Workers</h2>
            {Table(["App", "Last seen"], meta.Workers.Select(w => new[] { E(w.App), Time(w.LastSeen, now) }))}
            </div></div>
            <h2>Flow control <span class="muted">(limits; ready runs they hold back now, the top {HeldBackShown} keys)</span></h2>
            <div class="grid"><div>
            {Table(["Limit", "Value"], FlowRows(meta), "flow-control")}
            </div><div>
            <p id="held-back" data-held-back="{meta.HeldBack}">{HeldBackText(meta.HeldBack)}</p>
            {Table(["Key", "Ready held back", "Running"], meta.HeldBackKeys.Select(k => new[] { HeldKey(k.Key), $"{k.Ready}", $"{k.Running}" }), "held-back-keys")}
            </div></div>
            <h2>Cron triggers</h2>
            {CronTable(name, meta.Cron)}
            <h2>Recent runs</h2>
            {Table(["Run", "Status", "Attempt", "Created", "Duration"], recent.Select(r => new[]
            {
                $"<a class=\"run\" href=\"{basePath}/runs/{U(r.Id)}\">{E(r.Id)}</a>", Status(r.Status), $"{r.Attempt}/{r.MaxAttempts}", Time(r.CreatedAt, now), RunDuration(r, now),
            }))}
            </div>
            """;
        return Html(http, $"Workflow {name}", body, live: true);
    }

    /// <summary>A period for people: <c>1 min</c>, <c>30 s</c>, <c>2 h</c>, <c>1 d</c>; other lengths as <see cref="Html.Duration"/> does.</summary>
    internal static string Period(TimeSpan t) =>
        t > TimeSpan.Zero && t.Ticks % TimeSpan.TicksPerDay == 0 ? $"{(long)t.TotalDays} d"
        : t > TimeSpan.Zero && t.Ticks % TimeSpan.TicksPerHour == 0 ? $"{(long)t.TotalHours} h"
        : t > TimeSpan.Zero && t.Ticks % TimeSpan.TicksPerMinute == 0 ? $"{(long)t.TotalMinutes} min"
        : t > TimeSpan.Zero && t.Ticks % TimeSpan.TicksPerSecond == 0 ? $"{(long)t.TotalSeconds} s"
        : Duration(t);

    /// <summary>A rate limit as text: <c>100 per 1 min</c>.</summary>
    private static string Rate(RateLimit r) => $"{r.Limit} per {Period(r.Period)}";

    /// <summary>A debounce as text: <c>30 s, at most 5 min after the first emit</c>.</summary>
    private static string Debounce(DebounceOptions d) =>
        d.MaxWait is { } max ? $"{Period(d.Period)}, at most {Period(max)} after the first emit" : $"{Period(d.Period)} (no max wait)";

    /// <summary>A workflow's flow-control limits, one row each, "none" where it has none.</summary>
    private static IEnumerable<string[]> FlowRows(WorkflowMeta w) =>
    [
        ["Max concurrency per key", w.MaxConcurrencyPerKey is { } cap ? $"{cap}" : "<span class=\"muted\">none</span>"],
        ["Rate limit", w.RateLimit is { } r ? $"{E(Rate(r))} <span class=\"muted\">(per key; runs without a key share the workflow's)</span>" : "<span class=\"muted\">none</span>"],
        ["Debounce", w.Debounce is { } d ? $"{E(Debounce(d))} <span class=\"muted\">(per key)</span>" : "<span class=\"muted\">none</span>"],
    ];

    /// <summary>The workflows list's compact flow-control cell: the limits it has, and how many ready runs they hold back.</summary>
    private string FlowSummary(WorkflowMeta w)
    {
        var parts = new List<string>();
        if (w.MaxConcurrencyPerKey is { } cap) parts.Add($"{cap} per key");
        if (w.RateLimit is { } r) parts.Add(E(Rate(r)));
        if (w.Debounce is { } d) parts.Add($"debounce {Period(d.Period)}{(d.MaxWait is { } max ? $" (max {Period(max)})" : "")}");
        if (parts.Count == 0 && w.HeldBack == 0) return "<span class=\"muted\">none</span>";
        var held = w.HeldBack > 0 ? $"<br><a class=\"held\" href=\"{basePath}/workflows/{U(w.Name)}#held-back\"><span class=\"st waiting\">{w.HeldBack} held back</span></a>" : "";
        return parts.Count == 0 ? held[4..] : string.Join("<br>", parts) + held;
    }

    private static string HeldBackText(long n) => n switch
    {
        0 => "No ready run is held back now.",
        1 => "<b>1</b> ready run is held back now (queued, waiting for a key's slot or a rate window).",
        _ => $"<b>{n}</b> ready runs are held back now (queued, waiting for a key's slot or a rate window).",
    };

    /// <summary>A held-back key's cell; <c>""</c> is the runs without a key, held back by the workflow's own rate limit.</summary>
    private static string HeldKey(string key) => key.Length == 0 ? "<span class=\"muted\">(no key: the workflow's rate limit)</span>" : $"<code>{E(key)}</code>";

    /// <summary>A workflow's cron triggers: next fire, state, and (unless read-only) pause or resume and trigger now.</summary>
    private string CronTable(string workflow, IReadOnlyList<CronTriggerInfo> cron)
    {
        string Link(CronTriggerInfo c, string action, string label) =>
            $"<a class=\"button\" id=\"cron-{action}-{E(c.Id)}\" href=\"{basePath}/workflows/{U(workflow)}/cron/{action}?trigger={U(c.Id)}\">{label}</a>";
        var headers = options.ReadOnly ? new[] { "Trigger", "Expression", "Time zone", "Next fire", "State" } : ["Trigger", "Expression", "Time zone", "Next fire", "State", "Actions"];
        return Table(headers, cron.Select(c =>
        {
            var row = new List<string>
            {
                E(c.Id), $"<code>{E(c.Expression)}</code>", E(c.Timezone), NextFire(c),
                c.Paused ? "<span class=\"st waiting\">Paused</span>" : "<span class=\"st running\">Active</span>",
            };
            if (!options.ReadOnly)
                row.Add($"<span class=\"actions\">{(c.Paused ? Link(c, "resume", "Resume…") : Link(c, "pause", "Pause…"))}{Link(c, "trigger", "Trigger now…")}</span>");
            return row.ToArray();
        }), "cron");
    }

    private static string Percentile(double[] sorted, double p)
    {
        if (sorted.Length == 0) return "-";
        var i = (int)Math.Ceiling(p * sorted.Length) - 1;
        return Duration(TimeSpan.FromMilliseconds(sorted[Math.Clamp(i, 0, sorted.Length - 1)]));
    }

    // ---- queues and workers --------------------------------------------------------------------------

    public async Task<IResult> QueuesAsync(HttpContext http)
    {
        var client = Client(http);
        var statsTask = client.GetStatsAsync(http.RequestAborted);
        var perWorkflow = await client.GetQueueWorkflowStatsAsync(http.RequestAborted);
        var stats = await statsTask;
        var body = $"""
            <div id="queues-live" data-live>
            {Table(["Queue", "Ready", "Scheduled", "Running"], stats.Queues.Select(q => new[] { E(q.Name), $"{q.Ready}", $"{q.Scheduled}", $"{q.Running}" }), "queues")}
            <h2>Per workflow <span class="muted">(ready on the queue; scheduled, running and waiting across the workflow's queues)</span></h2>
            {Table(["Queue", "Workflow", "Ready", "Scheduled", "Running", "Waiting"], perWorkflow.Select(s => new[]
            {
                $"<a href=\"{basePath}/runs?queue={U(s.Queue)}\">{E(s.Queue)}</a>", $"<a href=\"{basePath}/workflows/{U(s.Workflow)}\">{E(s.Workflow)}</a>",
                $"{s.Ready}", $"{s.Scheduled}", $"{s.Running}", $"{s.Waiting}",
            }), "per-workflow")}
            </div>
            """;
        return Html(http, "Queues", body, live: true);
    }

    public async Task<IResult> WorkersAsync(HttpContext http)
    {
        var client = Client(http);
        var now = DateTimeOffset.UtcNow;
        var statsTask = client.GetStatsAsync(http.RequestAborted);
        var leases = await client.GetLeasesPerWorkerAsync(http.RequestAborted);
        var stats = await statsTask;
        var body = $"""
            <div id="workers-live" data-live>
            {Table(["App", "Node", "Queues", "Concurrency", "Slots in use", "Last seen", "Version"], stats.Workers.OrderBy(w => w.App, StringComparer.Ordinal).Select(w => new[]
            {
                E(w.App), $"<code>{E(w.Node)}</code>", E(string.Join(", ", w.Queues)), $"{w.Concurrency}", $"{leases.GetValueOrDefault(w.Node)}", Time(w.LastSeen, now),
                E(w.Version ?? "-"),
            }), "workers")}
            <p class="muted">Live workers: a heartbeat in the last 30 s. Slots in use: the runs whose lease the worker holds now.</p>
            </div>
            """;
        return Html(http, "Workers", body, live: true);
    }

    // ---- actions -------------------------------------------------------------------------------------

    private static IAntiforgery Antiforgery(HttpContext http) => http.RequestServices.GetService<IAntiforgery>()
        ?? throw new InvalidOperationException("Call services.AddRedflowDashboard() (antiforgery) to use the dashboard's actions.");

    private static string Token(HttpContext http)
    {
        var tokens = Antiforgery(http).GetAndStoreTokens(http);
        return $"<input type=\"hidden\" name=\"{E(tokens.FormFieldName)}\" value=\"{E(tokens.RequestToken)}\">";
    }

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
        try
        {
            await Antiforgery(http).ValidateRequestAsync(http);
            return null;
        }
        catch (AntiforgeryValidationException)
        {
            return Results.Text("The form expired or did not come from the dashboard; reload the page and try again.", statusCode: 400);
        }
    }

    public async Task<IResult> ConfirmAsync(HttpContext http, string id, string action)
    {
        var run = await Client(http).GetRunAsync(id, http.RequestAborted);
        if (run is null) return NotFound(http, id);
        if (action == "signal") return SignalForm(http, run, null, null, null);
        var what = action switch
        {
            "cancel" => "cancel this run (a running run's handler is told to stop)",
            "resume" => "take this run back to its queue as the same run: its recorded steps are kept and it gets a fresh budget of attempts",
            _ => "start a new run of the same workflow with the same input",
        };
        var note = action == "cancel" && IsTerminal(run.Status) ? $"<p class=\"notice\">This run is {Status(run.Status)} already: cancel will change nothing.</p>"
            : action == "resume" && run.Status is not (RunStatus.Failed or RunStatus.Canceled) ? $"<p class=\"notice\">This run is {Status(run.Status)}: only a failed or canceled run is resumed; resume will change nothing.</p>" : "";
        var body = $"""
            {note}<p>This will {what}: <a href="{basePath}/runs/{U(id)}"><code>{E(id)}</code></a> ({E(run.Workflow)}, {Status(run.Status)}).</p>
            <form method="post" action="{basePath}/runs/{U(id)}/{action}">
              {Token(http)}
              <button type="submit" id="confirm" class="{(action == "cancel" ? "danger" : "")}">Yes, {action}</button>
              <a href="{basePath}/runs/{U(id)}">No, go back</a>
            </form>
            """;
        return Html(http, $"{char.ToUpperInvariant(action[0])}{action[1..]} run {id}?", body);
    }

    /// <summary>The form that sends a signal to a run: the signal's name (the run's first signal wait, if it waits on one) and a JSON payload.</summary>
    private IResult SignalForm(HttpContext http, RunRecord run, string? signal, string? payload, string? problem)
    {
        signal ??= run.Waits.FirstOrDefault(w => w.Kind == WaitKind.Signal)?.Name ?? "";
        var body = $"""
            {(problem is null ? "" : $"<p id=\"problem\" class=\"notice\">{E(problem)}</p>")}
            <p>Send a signal to <a href="{basePath}/runs/{U(run.Id)}"><code>{E(run.Id)}</code></a> ({E(run.Workflow)}, {Status(run.Status)}). It is buffered with the run
            and taken by the next wait for that signal (<code>WaitForSignalAsync</code>), in the order sent.</p>
            <form method="post" action="{basePath}/runs/{U(run.Id)}/signal">
              {Token(http)}
              <p><label>Signal <input name="signal" id="signal-name" required value="{E(signal)}"></label></p>
              <p><label>Payload (JSON, empty for null)<br><textarea name="payload" id="signal-payload" rows="6" cols="60">{E(payload)}</textarea></label></p>
              <button type="submit" id="confirm">Yes, send the signal</button>
              <a href="{basePath}/runs/{U(run.Id)}">No, go back</a>
            </form>
            """;
        return Html(http, $"Signal run {run.Id}", body, problem is null ? 200 : 400);
    }

    public async Task<IResult> ActAsync(HttpContext http, string id, string action)
    {
        if (await Invalid(http) is { } bad) return bad;
        var client = Client(http);
        var run = await client.GetRunAsync(id, http.RequestAborted);
        if (run is null) return NotFound(http, id);
        if (action == "cancel")
        {
            if (!await client.CancelRunAsync(id, "canceled from the dashboard", http.RequestAborted))
            {
                var now = await client.GetRunAsync(id, http.RequestAborted) ?? run;
                return Html(http, $"Run {id}", $"<p id=\"problem\">Run <a href=\"{basePath}/runs/{U(id)}\"><code>{E(id)}</code></a> is {Status(now.Status)} already: nothing was changed.</p>", 409);
            }
            return Results.Redirect($"{basePath}/runs/{Uri.EscapeDataString(id)}");
        }
        if (action == "signal")
        {
            var form = await http.Request.ReadFormAsync(http.RequestAborted);
            string signal = form["signal"].ToString().Trim(), payload = form["payload"].ToString();
            JsonElement? value = null;
            if (payload.Trim().Length > 0)
            {
                try { value = JsonDocument.Parse(payload).RootElement.Clone(); }
                catch (JsonException ex) { return SignalForm(http, run, signal, payload, $"The payload is not valid JSON: {ex.Message}"); }
            }
            try
            {
                if (!await client.SignalRunAsync(id, signal, value, http.RequestAborted))
                {
                    var now = await client.GetRunAsync(id, http.RequestAborted) ?? run;
                    return Html(http, $"Run {id}", $"<p id=\"problem\">Run <a href=\"{basePath}/runs/{U(id)}\"><code>{E(id)}</code></a> is {Status(now.Status)} already: nothing was sent.</p>", 409);
                }
            }
            catch (ArgumentException ex) { return SignalForm(http, run, signal, payload, ex.Message); }
            return Results.Redirect($"{basePath}/runs/{Uri.EscapeDataString(id)}");
        }
        if (action == "resume")
        {
            if (run.Status is not (RunStatus.Failed or RunStatus.Canceled))
                return Html(http, $"Run {id}", $"<p id=\"problem\">Run <a href=\"{basePath}/runs/{U(id)}\"><code>{E(id)}</code></a> is {Status(run.Status)}: only a failed or canceled run is resumed; nothing was changed.</p>", 409);
            await client.ResumeRunAsync(id, http.RequestAborted);
            return Results.Redirect($"{basePath}/runs/{Uri.EscapeDataString(id)}");
        }
        var handle = await client.RerunAsync(id, http.RequestAborted);
        return Results.Redirect($"{basePath}/runs/{Uri.EscapeDataString(handle.RunId)}");
    }

    /// <summary>The confirmation page of a cron trigger action (pause, resume, trigger now).</summary>
    public async Task<IResult> ConfirmCronAsync(HttpContext http, string workflow, string action)
    {
        var trigger = Str(http, "trigger") ?? throw new BadQueryException("Name the cron trigger (trigger=ID).");
        var (meta, cron, problem) = await FindTriggerAsync(http, workflow, trigger);
        if (problem is not null) return problem;
        var back = $"{basePath}/workflows/{U(workflow)}";
        var what = action switch
        {
            "pause" => "pause this trigger: it fires nothing until resumed, and the instants that pass meanwhile are skipped (not fired when it is resumed)",
            "resume" => "resume this trigger: it fires again from its next instant; the instants that passed while it was paused are not fired",
            _ => "start one run of the workflow now, with the trigger's input (its schedule is not changed)",
        };
        var note = action == "pause" && cron!.Paused ? "<p class=\"notice\">This trigger is paused already: pause will change nothing.</p>"
            : action == "resume" && !cron!.Paused ? "<p class=\"notice\">This trigger is not paused: resume will change nothing.</p>" : "";
        var input = action == "trigger" && cron!.Input is { } i ? $"<h2>Input</h2>{Json(i, "input")}" : "";
        var label = action == "trigger" ? "trigger now" : action;
        var body = $"""
            {note}<p>This will {what}: <code>{E(trigger)}</code> (<code>{E(cron!.Expression)}</code> {E(cron.Timezone)}) of <a href="{back}">{E(meta!.Name)}</a>.</p>
            {input}
            <form method="post" action="{basePath}/workflows/{U(workflow)}/cron/{action}">
              {Token(http)}
              <input type="hidden" name="trigger" value="{E(trigger)}">
              <button type="submit" id="confirm">Yes, {label}</button>
              <a href="{back}">No, go back</a>
            </form>
            """;
        return Html(http, $"{char.ToUpperInvariant(label[0])}{label[1..]}: cron trigger {trigger}?", body);
    }

    /// <summary>Pauses, resumes or triggers a cron trigger now: back to the workflow's page, or to the run it started.</summary>
    public async Task<IResult> CronActAsync(HttpContext http, string workflow, string action)
    {
        if (await Invalid(http) is { } bad) return bad;
        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        var trigger = form["trigger"].ToString();
        if (trigger.Length == 0) throw new BadQueryException("Name the cron trigger (trigger=ID).");
        var (_, cron, problem) = await FindTriggerAsync(http, workflow, trigger);
        if (problem is not null) return problem;
        var client = Client(http);
        var back = $"{basePath}/workflows/{Uri.EscapeDataString(workflow)}";
        try
        {
            if (action == "trigger")
            {
                var handle = await client.TriggerCronNowAsync(workflow, trigger, http.RequestAborted);
                return Results.Redirect($"{basePath}/runs/{Uri.EscapeDataString(handle.RunId)}");
            }
            var changed = action == "pause"
                ? await client.PauseCronTriggerAsync(workflow, trigger, http.RequestAborted)
                : await client.ResumeCronTriggerAsync(workflow, trigger, http.RequestAborted);
            if (!changed)
                return Html(http, $"Cron trigger {trigger}", $"<p id=\"problem\">Cron trigger <code>{E(trigger)}</code> of <a href=\"{back}\">{E(workflow)}</a> is {(cron!.Paused ? "paused" : "not paused")} already: nothing was changed.</p>", 409);
        }
        catch (ArgumentException ex)
        {
            return Html(http, "Not found", $"<p id=\"problem\">{E(ex.Message)}</p>", 404);
        }
        return Results.Redirect(back);
    }

    /// <summary>A workflow and one of its cron triggers, or a 404 page saying which is unknown.</summary>
    private async Task<(WorkflowMeta? Meta, CronTriggerInfo? Trigger, IResult? Problem)> FindTriggerAsync(HttpContext http, string workflow, string trigger)
    {
        var meta = await Client(http).GetWorkflowMetaAsync(workflow, http.RequestAborted);
        if (meta is null) return (null, null, Html(http, "Not found", $"<p id=\"problem\">Workflow <code>{E(workflow)}</code> is not registered.</p>", 404));
        var cron = meta.Cron.FirstOrDefault(c => c.Id == trigger);
        if (cron is null)
            return (meta, null, Html(http, "Not found", $"<p id=\"problem\">Workflow <a href=\"{basePath}/workflows/{U(workflow)}\">{E(workflow)}</a> has no cron trigger <code>{E(trigger)}</code>.</p>", 404));
        return (meta, cron, null);
    }

    public async Task<IResult> ConfirmBulkAsync(HttpContext http)
    {
        var action = Str(http, "action");
        if (action is not ("rerun" or "cancel" or "resume")) throw new BadQueryException($"action '{action}' is not rerun, resume or cancel.");
        var client = Client(http);
        var ids = http.Request.Query["id"].OfType<string>().Where(i => i.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        string scope;
        if (ids.Count == 0)
        {
            var workflow = Str(http, "workflow") ?? throw new BadQueryException("Select runs, or name a workflow and a status (e.g. workflow=checkout&status=Failed).");
            var status = ParseStatus(Str(http, "status")) ?? throw new BadQueryException("A bulk action on a workflow needs a status (e.g. status=Failed).");
            var runs = await client.ListRunsAsync(new ListRunsParams { Workflow = workflow, Status = status, Limit = MaxBulk }, http.RequestAborted);
            ids = [.. runs.Select(r => r.Id)];
            scope = $"all {status.ToString().ToLowerInvariant()} runs of <b>{E(workflow)}</b>{(ids.Count == MaxBulk ? $" (the newest {MaxBulk:N0})" : "")}";
        }
        else
        {
            if (ids.Count > MaxBulk) throw new BadQueryException($"{ids.Count} runs are selected; one bulk action takes at most {MaxBulk:N0}.");
            scope = "the selected runs";
        }
        var n = ids.Count;
        var plural = n == 1 ? "1 run" : $"{n} runs";
        var what = action switch
        {
            "rerun" => $"start {plural} again (a new run of each, same workflow and input)",
            "resume" => $"resume {plural} (each the same run, from where it stopped; runs not failed or canceled are left as they are)",
            _ => $"cancel {plural}",
        };
        var body = n == 0 ? "<p id=\"count\" data-count=\"0\">No runs match: nothing to do.</p>" : $"""
            <p id="count" data-count="{n}">This will {what}: {scope}.</p>
            <form method="post" action="{basePath}/bulk">
              {Token(http)}
              <input type="hidden" name="action" value="{action}">
              {string.Join("", ids.Select(i => $"<input type=\"hidden\" name=\"id\" value=\"{E(i)}\">"))}
              <button type="submit" id="confirm" class="{(action == "cancel" ? "danger" : "")}">Yes, {action} {plural}</button>
              <a href="{basePath}/runs">No, go back</a>
            </form>
            <h2>Runs</h2><p>{string.Join(" ", ids.Take(50).Select(i => $"<a class=\"run\" href=\"{basePath}/runs/{U(i)}\">{E(i)}</a>"))}{(n > 50 ? $" and {n - 50} more" : "")}</p>
            """;
        return Html(http, $"{char.ToUpperInvariant(action[0])}{action[1..]} {plural}?", body);
    }

    public async Task<IResult> BulkAsync(HttpContext http)
    {
        if (await Invalid(http) is { } bad) return bad;
        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        var action = form["action"].ToString();
        if (action is not ("rerun" or "cancel" or "resume")) throw new BadQueryException($"action '{action}' is not rerun, resume or cancel.");
        var ids = form["id"].OfType<string>().Distinct(StringComparer.Ordinal).Take(MaxBulk).ToList();
        var client = Client(http);
        var done = new List<string>();
        var unchanged = new List<string>();
        foreach (var id in ids)
        {
            if (action == "cancel")
                (await client.CancelRunAsync(id, "canceled from the dashboard (bulk)", http.RequestAborted) ? done : unchanged).Add(id);
            else if (await client.GetRunAsync(id, http.RequestAborted) is not { } run) unchanged.Add(id);
            else if (action == "resume")
            {
                if (run.Status is RunStatus.Failed or RunStatus.Canceled) done.Add((await client.ResumeRunAsync(id, http.RequestAborted)).RunId);
                else unchanged.Add(id);
            }
            else done.Add((await client.RerunAsync(id, http.RequestAborted)).RunId);
        }
        var verb = action switch { "rerun" => "Started again", "resume" => "Resumed", _ => "Canceled" };
        var body = $"""
            <p id="result" data-done="{done.Count}" data-unchanged="{unchanged.Count}">{verb}: {done.Count} of {ids.Count}.{(unchanged.Count > 0 ? $" {unchanged.Count} unchanged (finished already, or gone)." : "")}</p>
            {(done.Count > 0 ? $"<h2>{(action switch { "rerun" => "New runs", "resume" => "Resumed", _ => "Canceled" })}</h2><p>{string.Join(" ", done.Select(i => $"<a class=\"run\" href=\"{basePath}/runs/{U(i)}\">{E(i)}</a>"))}</p>" : "")}
            <p><a href="{basePath}/runs">Back to the runs</a></p>
            """;
        return Html(http, action switch { "rerun" => "Rerun done", "resume" => "Resume done", _ => "Cancel done" }, body);
    }
}
