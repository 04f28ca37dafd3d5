using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Redflow.Dashboard;

/// <summary>Small HTML building blocks; every value from a run or a user is encoded here.</summary>
internal static class Html
{
    /// <summary>
    /// HTML-encodes text for element content and quoted attributes: <c>&amp; &lt; &gt; &quot; &#39;</c>. Other characters
    /// (ü, 中, emoji) stay as they are: the page is UTF-8.
    /// </summary>
    public static string E(string? text)
    {
        if (string.IsNullOrEmpty(text)) return "";
        if (text.AsSpan().IndexOfAny("&<>\"'") < 0) return text;
        var sb = new StringBuilder(text.Length + 16);
        foreach (var c in text)
            sb.Append(c switch { '&' => "&amp;", '<' => "&lt;", '>' => "&gt;", '"' => "&quot;", '\'' => "&#39;", _ => null } ?? c.ToString());
        return sb.ToString();
    }

    /// <summary>A path segment, URL-escaped and HTML-encoded.</summary>
    public static string U(string segment) => E(Uri.EscapeDataString(segment));

    /// <summary>An instant with its zone: <c>2026-01-31 12:00:00 UTC</c>.</summary>
    public static string Utc(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC";

    /// <summary>An instant as a relative time ("3 min ago", "in 2 h"), the absolute UTC time on hover.</summary>
    public static string Time(DateTimeOffset? t, DateTimeOffset? now = null)
    {
        if (t is not { } at) return "-";
        var iso = at.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
        return $"<time datetime=\"{iso}\" title=\"{Utc(at)}\">{Relative(at, now ?? DateTimeOffset.UtcNow)}</time>";
    }

    /// <summary>"just now", "42 s ago", "3 min ago", "in 2 h", "5 d ago".</summary>
    public static string Relative(DateTimeOffset t, DateTimeOffset now)
    {
        var d = t - now;
        var past = d < TimeSpan.Zero;
        var a = past ? -d : d;
        if (a < TimeSpan.FromSeconds(1)) return "just now";
        var text = a.TotalSeconds < 60 ? $"{(int)a.TotalSeconds} s"
            : a.TotalMinutes < 60 ? $"{(int)a.TotalMinutes} min"
            : a.TotalHours < 48 ? $"{(int)a.TotalHours} h"
            : $"{(int)a.TotalDays} d";
        return past ? text + " ago" : "in " + text;
    }

    /// <summary>A duration for people: <c>850 ms</c>, <c>12.3 s</c>, <c>4 min 2 s</c>.</summary>
    public static string Duration(TimeSpan d) =>
        d.TotalMilliseconds < 1000 ? $"{d.TotalMilliseconds:0} ms"
        : d.TotalSeconds < 60 ? string.Create(CultureInfo.InvariantCulture, $"{d.TotalSeconds:0.0} s")
        : d.TotalMinutes < 60 ? $"{(int)d.TotalMinutes} min {d.Seconds} s"
        : $"{(int)d.TotalHours} h {d.Minutes} min";

    public static string Status(RunStatus status) => $"<span class=\"st {status.ToString().ToLowerInvariant()}\">{status}</span>";

    public static string Table(string[] headers, IEnumerable<string[]> rows, string? id = null)
    {
        var sb = new StringBuilder(id is null ? "<table>" : $"<table id=\"{id}\">").Append("<thead><tr>");
        foreach (var h in headers) sb.Append("<th>").Append(h).Append("</th>"); // headers are literal HTML of the dashboard
        sb.Append("</tr></thead><tbody>");
        var any = false;
        foreach (var row in rows)
        {
            any = true;
            sb.Append("<tr>");
            foreach (var cell in row) sb.Append("<td>").Append(cell).Append("</td>"); // cells are already HTML
            sb.Append("</tr>");
        }
        if (!any) sb.Append("<tr><td colspan=\"").Append(headers.Length).Append("\" class=\"muted\">none</td></tr>");
        return sb.Append("</tbody></table>").ToString();
    }

    /// <summary>The most characters of JSON shown as a tree; larger documents are shown as indented text.</summary>
    private const int TreeLimit = 100_000;

    /// <summary>
    /// JSON as people read it: formatted (indented, non-ASCII as it is, HTML-encoded), objects and arrays collapsible.
    /// <c>data-json</c> holds the exact formatted text (for copying and tests).
    /// </summary>
    public static string Json(JsonElement value, string? id = null)
    {
        var text = RedflowJson.Format(value);
        var idAttr = id is null ? "" : $" id=\"{id}\" data-json=\"{E(text)}\"";
        if (text.Length > TreeLimit || value.ValueKind is not (JsonValueKind.Object or JsonValueKind.Array))
            return $"<pre class=\"json\"{idAttr}>{E(text)}</pre>";
        var sb = new StringBuilder($"<div class=\"json tree\"{idAttr}>");
        Tree(sb, value, null, 0);
        return sb.Append("</div>").ToString();
    }

    private static void Tree(StringBuilder sb, JsonElement v, string? key, int depth)
    {
        var label = key is null ? "" : $"<span class=\"k\">{E(RedflowJson.Format(JsonSerializer.SerializeToElement(key), false))}</span>: ";
        switch (v.ValueKind)
        {
            case JsonValueKind.Object or JsonValueKind.Array:
                var isObject = v.ValueKind == JsonValueKind.Object;
                var count = isObject ? v.EnumerateObject().Count() : v.GetArrayLength();
                var (open, close) = isObject ? ("{", "}") : ("[", "]");
                if (count == 0)
                {
                    sb.Append("<div>").Append(label).Append(open).Append(close).Append("</div>");
                    return;
                }
                sb.Append(depth < 3 ? "<details open>" : "<details>").Append("<summary>").Append(label).Append(open)
                  .Append("<span class=\"muted\"> ").Append(count).Append(isObject ? (count == 1 ? " key" : " keys") : (count == 1 ? " item" : " items"))
                  .Append(" </span></summary><div class=\"in\">");
                if (isObject) foreach (var p in v.EnumerateObject()) Tree(sb, p.Value, p.Name, depth + 1);
                else foreach (var item in v.EnumerateArray()) Tree(sb, item, null, depth + 1);
                sb.Append("</div>").Append(close).Append("</details>");
                return;
            default:
                var cls = v.ValueKind switch { JsonValueKind.String => "s", JsonValueKind.Number => "n", _ => "b" };
                sb.Append("<div>").Append(label).Append("<span class=\"").Append(cls).Append("\">").Append(E(RedflowJson.Format(v, false))).Append("</span></div>");
                return;
        }
    }

    public static string Page(string basePath, string title, string body, int refreshSeconds = 0, string? notice = null) => $$"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>{{E(title)}} · Redflow</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <style>{{Css}}</style></head>
        <body><header><a class="brand" href="{{basePath}}/">Redflow</a>
          <nav><a href="{{basePath}}/">Overview</a><a href="{{basePath}}/runs">Runs</a><a href="{{basePath}}/workflows">Workflows</a><a href="{{basePath}}/queues">Queues</a><a href="{{basePath}}/workers">Workers</a></nav>
          <span class="live" id="live" data-interval="{{refreshSeconds}}">{{(refreshSeconds > 0 ? $"live · every {refreshSeconds} s" : "")}}</span></header>
        <main><h1>{{E(title)}}</h1>
        {{(notice is null ? "" : $"<p class=\"notice\" id=\"notice\">{notice}</p>")}}
        {{body}}
        </main>{{(refreshSeconds > 0 ? Script : "")}}</body></html>
        """;

    /// <summary>
    /// The live refresh: every few seconds, while the tab is visible, it fetches the same URL (so the filters in the
    /// query string are kept) and swaps in each element marked <c>data-live</c>; the page is not reloaded, so the
    /// scroll position, the filter form and the selection stay. It pauses while a checkbox of the page is ticked.
    /// </summary>
    private const string Script = """
        <script>
        (function () {
          var live = document.getElementById('live'), every = (+live.dataset.interval || 5) * 1000, busy = false;
          async function tick() {
            if (busy || document.hidden || document.querySelector('main input[type=checkbox]:checked')) return;
            busy = true;
            try {
              var r = await fetch(location.href, { headers: { 'X-Redflow-Refresh': '1' }, credentials: 'same-origin' });
              var doc = new DOMParser().parseFromString(await r.text(), 'text/html');
              if (!r.ok) { live.textContent = 'paused: ' + (doc.querySelector('main p') || {}).textContent; live.className = 'live off'; return; }
              document.querySelectorAll('[data-live]').forEach(function (el) {
                var fresh = doc.getElementById(el.id);
                if (fresh && fresh.innerHTML !== el.innerHTML) el.innerHTML = fresh.innerHTML;
              });
              live.className = 'live'; live.textContent = 'live · ' + new Date().toLocaleTimeString();
            } catch (e) { live.textContent = 'paused: dashboard unreachable'; live.className = 'live off'; }
            finally { busy = false; }
          }
          setInterval(tick, every);
        })();
        </script>
        """;

    private const string Css = """
        :root { --bg: #f5f6f8; --panel: #fff; --text: #1b2027; --muted: #6b7480; --line: #e2e5ea; --head: #eef0f4;
          --accent: #d9412e; --link: #2459c7; --bar: #4f7fe0; --bad: #d8453a;
          --s-succ: #1f883d; --s-succ-bg: #dcf5e3; --s-fail: #c4302b; --s-fail-bg: #ffe1dd; --s-run: #1f5fd1; --s-run-bg: #dde9ff;
          --s-wait: #9a6700; --s-wait-bg: #fff1c2; --s-sched: #6e40c9; --s-sched-bg: #ece2ff; --s-q: #3d4a5a; --s-q-bg: #e6eaf0;
          --s-canc: #57606a; --s-canc-bg: #eceef1; }
        @media (prefers-color-scheme: dark) {
          :root { --bg: #0f1216; --panel: #171b21; --text: #dfe4ea; --muted: #8b95a1; --line: #2a3038; --head: #1e232a;
            --accent: #ff6b5b; --link: #79a7ff; --bar: #5b8def; --bad: #f0655c;
            --s-succ: #56d364; --s-succ-bg: #12341d; --s-fail: #ff7b72; --s-fail-bg: #3d1715; --s-run: #79a7ff; --s-run-bg: #16284a;
            --s-wait: #e3b341; --s-wait-bg: #3a2e0c; --s-sched: #c297ff; --s-sched-bg: #2c1f4a; --s-q: #c2cbd6; --s-q-bg: #262d36;
            --s-canc: #9aa4af; --s-canc-bg: #242a31; }
        }
        * { box-sizing: border-box; }
        body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: var(--text); background: var(--bg); }
        a { color: var(--link); text-decoration: none; } a:hover { text-decoration: underline; }
        header { background: #14181d; color: #fff; padding: 0 24px; height: 48px; display: flex; gap: 24px; align-items: center; }
        header .brand { color: #ff6b5b; font-weight: 700; font-size: 16px; letter-spacing: .3px; }
        header nav { display: flex; gap: 18px; } header nav a { color: #c4ccd6; } header nav a:hover { color: #fff; text-decoration: none; }
        .live { margin-left: auto; font-size: 12px; color: #8fd19e; } .live.off { color: #f0a35e; }
        main { padding: 20px 24px 40px; max-width: 1280px; }
        h1 { font-size: 20px; margin: 0 0 16px; font-weight: 650; word-break: break-all; } h2 { font-size: 15px; margin: 24px 0 8px; font-weight: 650; }
        table { border-collapse: collapse; background: var(--panel); width: 100%; margin-bottom: 12px; border: 1px solid var(--line); border-radius: 6px; }
        th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { background: var(--head); font-weight: 600; font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .4px; }
        tr:last-child td { border-bottom: 0; } td code { font-size: 12.5px; }
        .st { padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; white-space: nowrap; }
        .succeeded { color: var(--s-succ); background: var(--s-succ-bg); } .failed { color: var(--s-fail); background: var(--s-fail-bg); }
        .running { color: var(--s-run); background: var(--s-run-bg); } .waiting { color: var(--s-wait); background: var(--s-wait-bg); }
        .scheduled { color: var(--s-sched); background: var(--s-sched-bg); } .queued { color: var(--s-q); background: var(--s-q-bg); }
        .canceled { color: var(--s-canc); background: var(--s-canc-bg); }
        .muted { color: var(--muted); } time { border-bottom: 1px dotted var(--muted); cursor: help; }
        pre, .json { background: var(--panel); padding: 10px 12px; overflow: auto; border: 1px solid var(--line); border-radius: 6px;
          font: 12.5px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; margin: 0 0 12px; max-height: 480px; }
        .json summary { cursor: pointer; } .json .in { padding-left: 18px; } .json .k { color: var(--s-sched); } .json .s { color: var(--s-succ); }
        .json .n { color: var(--s-run); } .json .b { color: var(--s-wait); } td .json { max-height: 240px; margin: 0; }
        .cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 8px; }
        .card { background: var(--panel); padding: 10px 14px; border: 1px solid var(--line); border-radius: 6px; min-width: 120px; }
        .card b { display: block; font-size: 22px; font-weight: 650; } .card .st { font-size: 11px; }
        form.filters { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; margin-bottom: 12px; }
        input, select, button { font: inherit; color: var(--text); background: var(--panel); border: 1px solid var(--line); border-radius: 5px; padding: 5px 8px; }
        button, .button { cursor: pointer; background: var(--head); border: 1px solid var(--line); border-radius: 5px; padding: 5px 12px; color: var(--text); display: inline-block; }
        button.danger, .button.danger { background: var(--s-fail-bg); color: var(--s-fail); border-color: transparent; }
        .actions { display: flex; gap: 8px; margin-bottom: 12px; flex-wrap: wrap; }
        .notice { background: var(--s-wait-bg); color: var(--text); padding: 8px 12px; border-radius: 6px; }
        .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 0 20px; }
        .tl { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; margin-bottom: 12px; }
        .tl-row { display: grid; grid-template-columns: 180px 1fr 90px; gap: 10px; align-items: center; height: 24px; font-size: 13px; }
        .tl-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
        .tl-track { position: relative; height: 14px; background: var(--head); border-radius: 3px; }
        .tl-bar { position: absolute; top: 0; height: 14px; min-width: 2px; border-radius: 3px; background: var(--s-succ); }
        .tl-bar.failed { background: var(--s-fail); } .tl-bar.running, .tl-bar.queued, .tl-bar.scheduled, .tl-bar.waiting { background: var(--s-run); }
        .tl-bar.child { background: var(--s-sched); }
        .tl-axis { display: grid; grid-template-columns: 180px 1fr 90px; gap: 10px; font-size: 11px; color: var(--muted); }
        .tl-axis div { display: flex; justify-content: space-between; }
        svg text { fill: var(--muted); }
        """;
}
