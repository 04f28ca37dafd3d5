using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Redflow.Tests.Fixtures;

namespace Redflow.Dashboard.Tests;

/// <summary>
/// Base of the dashboard tests: a prefix of its own on the shared real Redis, a client, workers started on demand,
/// and the dashboard hosted on Kestrel at 127.0.0.1 (port 0) with an <see cref="HttpClient"/> that keeps cookies
/// (the antiforgery cookie) and does not follow redirects (so the tests see them).
/// </summary>
public abstract partial class DashboardTest : IAsyncLifetime
{
    private readonly List<RedflowWorker> _workers = [];
    private WebApplication? _app;

    protected DashboardTest()
    {
        Prefix = "d" + Guid.NewGuid().ToString("N")[..10];
        Client = RedflowClient.Create(new RedflowClientOptions { Url = RedisServer.Url, Prefix = Prefix });
        Http = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false });
    }

    protected string Prefix { get; }

    protected IRedflowClient Client { get; }

    protected HttpClient Http { get; }

    /// <summary>The dashboard's base URL, e.g. <c>http://127.0.0.1:41234/redflow</c>.</summary>
    protected string BaseUrl { get; private set; } = "";

    protected static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(Client);
        builder.Services.AddRedflowDashboard();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _app = builder.Build();
        _app.MapRedflowDashboard("/redflow", DashboardOptions);
        await _app.StartAsync();
        BaseUrl = _app.Urls.First() + "/redflow";
    }

    /// <summary>The options the test's dashboard is mapped with.</summary>
    protected virtual RedflowDashboardOptions DashboardOptions => new();

    /// <summary>Hosts another dashboard (disposed by the caller) with other options, on its own port.</summary>
    protected static async Task<(WebApplication App, string Url)> StartDashboardAsync(RedflowDashboardOptions options, IRedflowClient? client = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (client is not null) builder.Services.AddSingleton(client);
        builder.Services.AddRedflowDashboard();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapRedflowDashboard("/redflow", options);
        await app.StartAsync();
        return (app, app.Urls.First() + "/redflow");
    }

    /// <summary>POSTs a form with the given fields (the antiforgery one among them).</summary>
    protected async Task<HttpResponseMessage> PostFormAsync(string url, IEnumerable<KeyValuePair<string, string>> fields) =>
        await Http.PostAsync(url, new FormUrlEncodedContent(fields));

    public async Task DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
        foreach (var worker in _workers) await worker.StopAsync();
        Http.Dispose();
        await Client.DisposeAsync();
    }

    protected async Task<RedflowWorker> StartWorkerAsync(string app, params WorkflowDefinition[] workflows)
    {
        var worker = await RedflowWorker.StartAsync(new StartWorkerOptions
        {
            App = app,
            Url = RedisServer.Url,
            Prefix = Prefix,
            Workflows = workflows,
            Concurrency = 4,
            Lease = TimeSpan.FromSeconds(2),
            ReaperInterval = TimeSpan.FromMilliseconds(200),
            BlmoveTimeout = TimeSpan.FromMilliseconds(200),
            ShutdownTimeout = TimeSpan.FromMilliseconds(500),
        });
        lock (_workers) _workers.Add(worker);
        return worker;
    }

    /// <summary>GETs a dashboard page (path relative to <see cref="BaseUrl"/>), expecting <paramref name="status"/>.</summary>
    protected async Task<string> GetPageAsync(string path, HttpStatusCode status = HttpStatusCode.OK)
    {
        using var response = await Http.GetAsync(BaseUrl + path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"GET {path}: {(int)response.StatusCode}, expected {(int)status}.\n{body}");
        if (status == HttpStatusCode.OK) Assert.StartsWith("text/html", response.Content.Headers.ContentType?.ToString());
        return body;
    }

    /// <summary>The run ids a page links to with <c>class="run"</c> (the runs table), in page order.</summary>
    protected static List<string> RunIds(string html) =>
        RunLink().Matches(html).Select(m => WebUtility.HtmlDecode(m.Groups[1].Value)).ToList();

    /// <summary>The hidden antiforgery field of a confirmation page: its name and value.</summary>
    protected static KeyValuePair<string, string> AntiforgeryField(string html)
    {
        var m = HiddenInput().Match(html);
        Assert.True(m.Success, "The confirmation page has no hidden token field.");
        return new(WebUtility.HtmlDecode(m.Groups[1].Value), WebUtility.HtmlDecode(m.Groups[2].Value));
    }

    /// <summary>The action URL of a page's POST form.</summary>
    protected string FormAction(string html)
    {
        var m = PostForm().Match(html);
        Assert.True(m.Success, "The page has no POST form.");
        return new Uri(new Uri(BaseUrl), WebUtility.HtmlDecode(m.Groups[1].Value)).ToString();
    }

    protected static async Task EventuallyAsync(Func<Task<bool>> condition, string because)
    {
        var until = DateTime.UtcNow + Generous;
        while (!await condition())
        {
            if (DateTime.UtcNow > until) throw new Xunit.Sdk.XunitException($"Timed out waiting until {because}.");
            await Task.Delay(20);
        }
    }

    /// <summary>The formatted JSON of a page's JSON block (<c>input</c>, <c>output</c>) as the dashboard shows it.</summary>
    protected static string? JsonBlock(string html, string id)
    {
        var m = Regex.Match(html, $"id=\"{id}\" data-json=\"([^\"]*)\"");
        return m.Success ? WebUtility.HtmlDecode(m.Groups[1].Value) : null;
    }

    [GeneratedRegex("<a class=\"run\" href=\"[^\"]*\">([^<]*)</a>")]
    private static partial Regex RunLink();

    [GeneratedRegex("<input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]*)\">")]
    private static partial Regex HiddenInput();

    [GeneratedRegex("<form method=\"post\" action=\"([^\"]+)\">")]
    private static partial Regex PostForm();
}
