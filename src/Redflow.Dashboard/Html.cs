using System.Globalization;
using System.Net;
using System.Text;

namespace Redflow.Dashboard;

/// <summary>Small HTML building blocks; every value from a run or a user is encoded here.</summary>
internal static class Html
{
    public static string E(string? text) => WebUtility.HtmlEncode(text ?? "");

    public static string Time(DateTimeOffset? t) => t?.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "-";

    public static string Status(RunStatus status) => $"<span class=\"st {status.ToString().ToLowerInvariant()}\">{status}</span>";

    public static string Table(string[] headers, IEnumerable<string[]> rows)
    {
        var sb = new StringBuilder("<table><thead><tr>");
        foreach (var h in headers) sb.Append("<th>").Append(E(h)).Append("</th>");
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

    public static string Page(string basePath, string title, string body) => $$"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>{{E(title)}} · Redflow</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
          body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
          header { background: #1d232a; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: center; }
          header a { color: #cfd6de; text-decoration: none; } header a:hover { color: #fff; } header b { color: #ff6b5b; }
          main { padding: 16px 20px; max-width: 1200px; }
          h1 { font-size: 20px; margin: 4px 0 12px; } h2 { font-size: 16px; margin: 20px 0 8px; }
          table { border-collapse: collapse; background: #fff; width: 100%; margin-bottom: 12px; }
          th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
          th { background: #eef0f3; font-weight: 600; }
          .st { padding: 1px 6px; border-radius: 3px; font-size: 12px; background: #e3e6ea; }
          .succeeded { background: #d6f5de; } .failed { background: #ffd9d4; } .running { background: #d9e8ff; }
          .canceled { background: #eee; } .waiting { background: #fff1c2; } .scheduled { background: #ece2ff; }
          .muted { color: #7a838c; } pre { background: #fff; padding: 8px; overflow: auto; border: 1px solid #e3e6ea; }
          .bar { background: #5b8def; height: 12px; display: inline-block; min-width: 1px; }
          form.inline { display: inline; } button { padding: 4px 10px; cursor: pointer; }
          .cards { display: flex; gap: 10px; flex-wrap: wrap; } .card { background: #fff; padding: 8px 12px; border: 1px solid #e3e6ea; }
          .card b { display: block; font-size: 18px; }
        </style></head>
        <body><header><b>Redflow</b>
          <a href="{{basePath}}/">Overview</a><a href="{{basePath}}/runs">Runs</a><a href="{{basePath}}/workflows">Workflows</a></header>
        <main><h1>{{E(title)}}</h1>
        {{body}}
        </main></body></html>
        """;
}
