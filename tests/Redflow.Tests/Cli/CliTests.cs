using System.Text.Json;
using Redflow.Cli;
using Redflow.Tests.Integration;

namespace Redflow.Tests.Cli;

/// <summary>The redflow command, run in-process against the shared Redis.</summary>
public sealed class CliTests : WorkerTest
{
    private async Task<(int Code, string Out, string Err)> Redflow(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await CliApp.RunAsync([.. args, "--url", TestEnv.Url, "--prefix", Prefix], output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static readonly WorkflowDefinition<Order, int> Doubler = Workflows.Define<Order, int>("cli-double", async ctx =>
    {
        if (ctx.Input.Amount < 0) throw new NonRetriableException("negative amount");
        return await ctx.Step.RunAsync("double", ct => Task.FromResult(ctx.Input.Amount * 2));
    }, new WorkflowOptions { MaxConcurrency = 5, MaxAttempts = 1 });

    [Fact]
    public async Task Emit_wait_list_show_rerun_and_stats()
    {
        await StartWorkerAsync(Doubler);
        var emitted = await Redflow("emit", "cli-double", "--input", """{"id":"a","amount":21}""", "--wait", "--json");
        Assert.Equal(ExitCodes.Ok, emitted.Code);
        using var doc = JsonDocument.Parse(emitted.Out);
        var runId = doc.RootElement.GetProperty("run_id").GetString()!;
        Assert.Equal(42, doc.RootElement.GetProperty("output").GetInt32());

        var list = await Redflow("runs", "list", "--workflow", "cli-double");
        Assert.Equal(ExitCodes.Ok, list.Code);
        Assert.Contains(runId, list.Out);
        Assert.Contains("Succeeded", list.Out);
        var listJson = JsonDocument.Parse((await Redflow("runs", "list", "--status", "Succeeded", "--json")).Out);
        Assert.Equal(runId, listJson.RootElement[0].GetProperty("id").GetString());

        var show = await Redflow("runs", "show", runId);
        Assert.Contains("STEP", show.Out);
        Assert.Contains("double", show.Out);
        Assert.Contains("42", show.Out);

        var rerun = await Redflow("runs", "rerun", runId);
        Assert.Equal(ExitCodes.Ok, rerun.Code);
        Assert.Equal(42, await Client.GetHandle(rerun.Out.Trim()).ResultAsync<int>(Generous));

        var workflows = await Redflow("workflows");
        Assert.Contains("cli-double", workflows.Out);
        var stats = await Redflow("stats", "--json");
        Assert.Equal(ExitCodes.Ok, stats.Code);
        Assert.True(JsonDocument.Parse(stats.Out).RootElement.GetProperty("run_counts").GetProperty("succeeded").GetInt32() >= 2);
    }

    [Fact]
    public async Task A_failed_run_waited_on_exits_1_and_cancel_reports_its_outcome()
    {
        await StartWorkerAsync(Doubler);
        var failed = await Redflow("emit", "cli-double", "--input", """{"id":"a","amount":-1}""", "--wait");
        Assert.Equal(ExitCodes.RunNotSucceeded, failed.Code);
        Assert.Contains("negative amount", failed.Err);

        var later = await Redflow("emit", "cli-double", "--input", """{"id":"b","amount":1}""", "--run-at", DateTimeOffset.UtcNow.AddHours(1).ToString("O"));
        var id = later.Out.Trim();
        Assert.Equal(RunStatus.Scheduled, (await RunAsync(id)).Status);
        var cancel = await Redflow("runs", "cancel", id, "--reason", "from the cli");
        Assert.Equal(ExitCodes.Ok, cancel.Code);
        Assert.Equal("from the cli", (await RunAsync(id)).CancelReason);
        Assert.Equal(ExitCodes.NotFound, (await Redflow("runs", "cancel", id)).Code); // already finished
    }

    [Fact]
    public async Task Clear_errors_and_exit_codes_for_bad_input()
    {
        await StartWorkerAsync(Doubler);
        Assert.Equal(ExitCodes.NotFound, (await Redflow("runs", "show", "run_nope")).Code);
        Assert.Equal(ExitCodes.NotFound, (await Redflow("emit", "no-such-workflow")).Code);
        var badJson = await Redflow("emit", "cli-double", "--input", "{not json");
        Assert.Equal(ExitCodes.Usage, badJson.Code);
        Assert.Contains("--input", badJson.Err);
        Assert.Equal(ExitCodes.Usage, (await Redflow("emit", "cli-double", "--run-at", "tomorrowish")).Code);
        Assert.Equal(ExitCodes.Usage, (await Redflow("runs", "frobnicate")).Code);

        var badUrl = new StringWriter();
        Assert.Equal(ExitCodes.Usage, await CliApp.RunAsync(["stats", "--url", "http://nope"], new StringWriter(), badUrl));
        Assert.Contains("redis://", badUrl.ToString());
        var down = new StringWriter();
        var port = Fixtures.RedisServer.FreePort(); // nothing listens there
        Assert.Equal(ExitCodes.RedisUnavailable, await CliApp.RunAsync(["stats", "--url", $"127.0.0.1:{port},connectTimeout=500,syncTimeout=1000,asyncTimeout=1000"], new StringWriter(), down));
        Assert.Contains("Cannot reach Redis", down.ToString());
    }
}
