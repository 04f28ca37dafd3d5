using System.Net;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using static Redflow.Dashboard.Html;

namespace Redflow.Dashboard;

/// <summary>Options of the dashboard.</summary>
public sealed class RedflowDashboardOptions
{
    /// <summary>
    /// An authorization policy name the dashboard's endpoints require. When null (the default), only requests from
    /// loopback addresses with a loopback <c>Host</c> (<c>localhost</c>, <c>127.0.0.1</c>, <c>[::1]</c>) are answered.
    /// </summary>
    public string? AuthorizationPolicy { get; init; }

    /// <summary>
    /// An authorization policy the actions (cancel, rerun, resume, signal, bulk actions, pause, resume and trigger a cron
    /// trigger now, and their confirmation pages) require
    /// on top of the one for viewing; null (the default): whoever may view may act.
    /// </summary>
    public string? ActionsAuthorizationPolicy { get; init; }

    /// <summary>When true, the dashboard only shows: no action links (on runs or cron triggers), and every action answers 403. Default false.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>How often pages refresh themselves in the browser (a light poll of the same URL); zero turns it off. Default 5 s.</summary>
    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a page waits for Redis before it answers 503 "Redis is unreachable". Default 3 s.</summary>
    public TimeSpan RedisTimeout { get; init; } = TimeSpan.FromSeconds(3);

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
    /// Maps the dashboard under <paramref name="prefix"/>: overview, runs (searched, filtered, paged, bulk actions), a
    /// run with its steps and timeline, workflows and a page per workflow (pause, resume and trigger now for its cron
    /// triggers), queues, workers; every action behind a confirmation (POST with an antiforgery token). It reads only through the client's inspection API.
    /// </summary>
    public static RouteGroupBuilder MapRedflowDashboard(this IEndpointRouteBuilder endpoints, string prefix = "/redflow", RedflowDashboardOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        options ??= new RedflowDashboardOptions();
        if (options.RedisTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), options.RedisTimeout, "RedflowDashboardOptions.RedisTimeout must be positive.");
        if (options.RefreshInterval < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), options.RefreshInterval, "RedflowDashboardOptions.RefreshInterval must not be negative.");
        var basePath = "/" + prefix.Trim('/');
        var ui = new Ui(basePath, options);
        var group = endpoints.MapGroup(basePath);
        if (options.AuthorizationPolicy is { } policy) group.RequireAuthorization(policy);
        else group.AddEndpointFilter(async (ctx, next) => LoopbackOnly(ctx.HttpContext) ?? await next(ctx));
        group.AddEndpointFilter(async (ctx, next) => await ui.GuardAsync(ctx.HttpContext, async () => await next(ctx)));

        group.MapGet("/", async Task<IResult> (HttpContext http) => await ui.OverviewAsync(http));
        group.MapGet("/runs", async Task<IResult> (HttpContext http) => await ui.RunsAsync(http));
        group.MapGet("/runs/{id}", async Task<IResult> (HttpContext http, string id) => await ui.RunAsync(http, id));
        group.MapGet("/workflows", async Task<IResult> (HttpContext http) => await ui.WorkflowsAsync(http));
        group.MapGet("/workflows/{name}", async Task<IResult> (HttpContext http, string name) => await ui.WorkflowAsync(http, name));
        group.MapGet("/queues", async Task<IResult> (HttpContext http) => await ui.QueuesAsync(http));
        group.MapGet("/workers", async Task<IResult> (HttpContext http) => await ui.WorkersAsync(http));

        var actions = group.MapGroup("");
        if (options.ActionsAuthorizationPolicy is { } actionsPolicy) actions.RequireAuthorization(actionsPolicy);
        if (options.ReadOnly) actions.AddEndpointFilter((ctx, _) => ValueTask.FromResult<object?>(
            ui.Html(ctx.HttpContext, "Read-only", "<p>This dashboard is read-only (RedflowDashboardOptions.ReadOnly): it does not act on runs.</p>", 403)));
        foreach (var action in Ui.Actions)
        {
            actions.MapGet($"/runs/{{id}}/{action}", async Task<IResult> (HttpContext http, string id) => await ui.ConfirmAsync(http, id, action));
            actions.MapPost($"/runs/{{id}}/{action}", async Task<IResult> (HttpContext http, string id) => await ui.ActAsync(http, id, action));
        }
        foreach (var action in Ui.CronActions)
        {
            actions.MapGet($"/workflows/{{name}}/cron/{action}", async Task<IResult> (HttpContext http, string name) => await ui.ConfirmCronAsync(http, name, action));
            actions.MapPost($"/workflows/{{name}}/cron/{action}", async Task<IResult> (HttpContext http, string name) => await ui.CronActAsync(http, name, action));
        }
        actions.MapGet("/bulk", async Task<IResult> (HttpContext http) => await ui.ConfirmBulkAsync(http));
        actions.MapPost("/bulk", async Task<IResult> (HttpContext http) => await ui.BulkAsync(http));
        return group;
    }

    /// <summary>
    /// Without an authorization policy: answers 403 unless the request comes from a loopback address and names a
    /// loopback host. The <c>Host</c> check defeats DNS rebinding: a page on a name that resolves to 127.0.0.1, opened
    /// in a browser on this machine, sends its own name as <c>Host</c>.
    /// </summary>
    internal static IResult? LoopbackOnly(HttpContext http)
    {
        if (http.Connection.RemoteIpAddress is not { } ip || !IPAddress.IsLoopback(ip))
            return Results.Text("The Redflow dashboard only answers loopback requests unless an authorization policy is set.", statusCode: 403);
        if (!IsLoopbackHost(http.Request.Host.Host))
            return Results.Text("The Redflow dashboard only answers requests for localhost, 127.0.0.1 or [::1] unless an authorization policy is set " +
                                "(another Host name could be DNS rebinding).", statusCode: 403);
        return null;
    }

    internal static bool IsLoopbackHost(string host)
    {
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return true;
        var bare = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        return (bare == "127.0.0.1" || bare == "::1") && IPAddress.TryParse(bare, out var ip) && IPAddress.IsLoopback(ip);
    }
}

/// <summary>A query string value that does not fit: answered 400 with its message.</summary>
internal sealed class BadQueryException(string message) : Exception(message);
