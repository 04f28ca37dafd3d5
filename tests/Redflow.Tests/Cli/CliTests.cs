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
    public async Task Cron_pause_resume_and_trigger_now()
    {
        var yearly = Workflows.Define("cli-yearly", async ctx => ctx.Input, new WorkflowOptions
        {
            Cron = [new CronTrigger("0 0 1 1 *") { Id = "cli-yearly-trigger", Input = new { region = "eu" } }],
        });
        await StartWorkerAsync(yearly);
        var (code, output, _) = await Redflow("cron", "pause", "cli-yearly", "cli-yearly-trigger");
        Assert.Equal(0, code);
        Assert.Contains("paused", output);
        Assert.True(Assert.Single((await Client.GetWorkflowMetaAsync("cli-yearly"))!.Cron).Paused);
        (code, output, _) = await Redflow("cron", "pause", "cli-yearly", "cli-yearly-trigger");
        Assert.Equal(0, code);
        Assert.Contains("nothing was changed", output);
        (code, output, _) = await Redflow("cron", "resume", "cli-yearly", "cli-yearly-trigger", "--json");
        Assert.Equal(0, code);
        Assert.True(JsonDocument.Parse(output).RootElement.GetProperty("changed").GetBoolean());
        Assert.False(Assert.Single((await Client.GetWorkflowMetaAsync("cli-yearly"))!.Cron).Paused);

        (code, output, _) = await Redflow("cron", "trigger", "cli-yearly", "cli-yearly-trigger");
        Assert.Equal(0, code);
        var run = (await Client.GetRunAsync(output.Trim()))!;
        Assert.Equal("eu", run.Input.GetProperty("region").GetString());

        var (bad, _, err) = await Redflow("cron", "trigger", "cli-yearly", "nope");
        Assert.Equal(3, bad);
        Assert.Contains("no cron trigger 'nope'", err);
        (bad, _, err) = await Redflow("cron", "pause", "no-such-workflow", "cli-yearly-trigger");
        Assert.Equal(3, bad);
        Assert.Contains("not registered", err);
        Assert.Single(await Client.ListRunsAsync(new ListRunsParams { Workflow = "cli-yearly" }));
    }

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
    public async Task Runs_signal_and_events_send_resume_waiting_runs_and_show_lists_the_waits()
    {
        var approval = Workflows.Define<Order, string>("cli-approval", async ctx =>
        {
            var by = await ctx.Step.WaitForSignalAsync<string>("approval", "approve");
            var paid = await ctx.Step.WaitForEventAsync<int>("paid", "cli.paid", new WaitOptions { Key = ctx.Input.Id });
            return $"{by}:{paid}";
        }, new WorkflowOptions { MaxConcurrency = 5 });
        await StartWorkerAsync(approval);
        var handle = await Client.EmitWorkflowAsync("cli-approval", new Order("o-9", 1));
        await EventuallyAsync(async () => (await RunAsync(handle.RunId)).Status == RunStatus.Waiting, "the run waits");
        var show = await Redflow("runs", "show", handle.RunId);
        Assert.Contains("waits on  signal approve (step approval)", show.Out);
        Assert.Equal(ExitCodes.Usage, (await Redflow("runs", "signal", handle.RunId, "approve", "--payload", "{not json")).Code);
        var signaled = await Redflow("runs", "signal", handle.RunId, "approve", "--payload", "\"dana\"");
        Assert.Equal(ExitCodes.Ok, signaled.Code);
        await EventuallyAsync(async () => (await RunAsync(handle.RunId)).Waits.Any(w => w.Kind == WaitKind.Event), "the run waits on the event");
        var sent = await Redflow("events", "send", "cli.paid", "--key", "o-9", "--payload", "5", "--idempotency-key", "e1", "--json");
        Assert.Equal(ExitCodes.Ok, sent.Code);
        Assert.Equal(1, JsonDocument.Parse(sent.Out).RootElement.GetProperty("runs_resumed").GetInt32());
        Assert.Equal("dana:5", await handle.ResultAsync<string>(Generous));
        Assert.Equal(ExitCodes.NotFound, (await Redflow("runs", "signal", handle.RunId, "approve")).Code); // finished: nothing sent
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

    private static async Task<(int Code, string Out, string Err)> Bare(string[] args, string? stdin = null, string? redisUrl = null)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await CliApp.RunAsync(args, output, error, new StringReader(stdin ?? ""), name => name == "REDIS_URL" ? redisUrl : null);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task A_redis_password_never_appears_in_any_output()
    {
        var port = Fixtures.RedisServer.FreePort(); // nothing listens there
        string[] secrets = ["se@cr%40et", "se@cr@et", "cr%40et", "cr@et", "hunter2"];
        void NoSecret((int Code, string Out, string Err) r, string what)
        {
            foreach (var secret in secrets)
            {
                Assert.DoesNotContain(secret, r.Out);
                Assert.DoesNotContain(secret, r.Err);
            }
            Assert.True(r.Code != ExitCodes.Ok, $"{what}: exit {r.Code}");
        }
        // A password with '@' in it (raw and escaped), from --url and from $REDIS_URL, with and without --json.
        var url = $"redis://user:se@cr%40et@127.0.0.1:{port}";
        var fromOption = await Bare(["stats", "--url", url]);
        NoSecret(fromOption, "--url");
        Assert.Equal(ExitCodes.RedisUnavailable, fromOption.Code);
        Assert.Contains($"Cannot reach Redis at redis://user:***@127.0.0.1:{port}", fromOption.Err);
        Assert.Contains("connection refused", fromOption.Err);
        Assert.True(fromOption.Err.Length < 200, fromOption.Err); // short: no exception dump
        var fromEnv = await Bare(["runs", "list", "--json"], redisUrl: url);
        NoSecret(fromEnv, "$REDIS_URL");
        Assert.Equal(ExitCodes.RedisUnavailable, JsonDocument.Parse(fromEnv.Err).RootElement.GetProperty("error").GetProperty("code").GetInt32());
        // A configuration string's password=, unreachable and malformed.
        NoSecret(await Bare(["stats", "--url", $"127.0.0.1:{port},password=hunter2,connectTimeout=500"]), "configuration string");
        NoSecret(await Bare(["stats", "--url", "127.0.0.1,password=hunter2,connectTimeout=notanumber"]), "malformed configuration string");
        NoSecret(await Bare(["stats", "--url", "redis://u:se@cr@et@127.0.0.1/notadb"]), "malformed URL");
        NoSecret(await Bare(["stats", "--url", "http://u:hunter2@127.0.0.1"]), "wrong scheme");
        // A password the server does not take: the real Redis of the tests.
        var real = new Uri(TestEnv.Url);
        var wrong = await Bare(["stats", "--url", $"{real.Host}:{real.Port},user=nobody,password=hunter2"]);
        foreach (var secret in secrets) Assert.DoesNotContain(secret, wrong.Out + wrong.Err);
    }

    [Fact]
    public async Task Emit_checks_its_arguments_before_it_writes()
    {
        await StartWorkerAsync(Doubler);
        var zero = await Redflow("emit", "cli-double", "--input", """{"id":"a","amount":1}""", "--wait", "--timeout", "0");
        Assert.Equal(ExitCodes.Usage, zero.Code);
        Assert.Contains("--timeout", zero.Err);
        Assert.Equal(ExitCodes.Usage, (await Redflow("emit", "cli-double", "--delay", "soon")).Code);
        Assert.Equal(ExitCodes.Usage, (await Redflow("emit", "cli-double", "--delay", "5m", "--run-at", "2030-01-01T00:00:00Z")).Code);
        Assert.Equal(ExitCodes.Usage, (await Redflow("emit", "cli-double", "--input", "{}", "--input-file", "x.json")).Code);
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "cli-double" }));
    }

    [Fact]
    public async Task Emit_key_and_priority_runs_show_them_and_workflows_shows_limits_and_held_back_runs()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var capped = Workflows.Define<Order, int>("cli-tenant", async ctx =>
        {
            if (ctx.Input.Id == "hold") await ctx.Step.RunAsync("hold", async ct => { await gate.Task.WaitAsync(ct); return 1; });
            return ctx.Input.Amount;
        }, new WorkflowOptions { MaxConcurrency = 5, MaxConcurrencyPerKey = 1, RateLimit = new RateLimit(100, TimeSpan.FromMinutes(1)) });
        var debounced = Workflows.Define<Order, int>("cli-debounced", async ctx => ctx.Input.Amount,
            new WorkflowOptions { Debounce = new DebounceOptions(TimeSpan.FromSeconds(30)) { MaxWait = TimeSpan.FromMilliseconds(45_500) } });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [capped, debounced, Doubler], Concurrency = 4 });

        var holder = await Redflow("emit", "cli-tenant", "--input", """{"id":"hold","amount":1}""", "--key", "tenant-42");
        Assert.Equal(ExitCodes.Ok, holder.Code);
        var holderId = holder.Out.Trim();
        await EventuallyAsync(async () => (await RunAsync(holderId)).Status == RunStatus.Running, "the key's first run holds its slot");
        var queued = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            var more = await Redflow("emit", "cli-tenant", "--input", $$"""{"id":"m{{i}}","amount":{{i}}}""", "--key", "tenant-42", "--priority", "-5", "--json");
            Assert.Equal(ExitCodes.Ok, more.Code);
            queued.Add(JsonDocument.Parse(more.Out).RootElement.GetProperty("run_id").GetString()!);
        }
        var stored = await RunAsync(queued[0]);
        Assert.Equal("tenant-42", stored.Key);
        Assert.Equal(-5, stored.Priority);

        var show = await Redflow("runs", "show", queued[0]);
        Assert.Contains("key       tenant-42 (flow control)", show.Out);
        Assert.Contains("priority  -5", show.Out);
        var showJson = JsonDocument.Parse((await Redflow("runs", "show", queued[0], "--json")).Out).RootElement.GetProperty("run");
        Assert.Equal("tenant-42", showJson.GetProperty("key").GetString());
        Assert.Equal(-5, showJson.GetProperty("priority").GetInt32());
        var plain = await Redflow("emit", "cli-double", "--input", """{"id":"p","amount":1}""", "--wait", "--json");
        var plainShow = await Redflow("runs", "show", JsonDocument.Parse(plain.Out).RootElement.GetProperty("run_id").GetString()!);
        Assert.DoesNotContain("key       ", plainShow.Out);
        Assert.DoesNotContain("priority  ", plainShow.Out);

        // The workflows table: the limits in one column and the runs they hold back in the next.
        var table = "";
        await EventuallyAsync(async () => HeldBack(table = (await Redflow("workflows")).Out, "cli-tenant") == "2", "the two runs behind the cap are held back");
        Assert.Contains("FLOW CONTROL", table);
        Assert.Equal("per-key 1; 100/1m", FlowCell(table, "cli-tenant"));
        Assert.Equal("debounce 30s (max 45500ms)", FlowCell(table, "cli-debounced"));
        Assert.Equal("0", HeldBack(table, "cli-debounced"));
        Assert.Equal("-", FlowCell(table, "cli-double"));

        // --json has the limits and the held-back keys.
        var metas = JsonDocument.Parse((await Redflow("workflows", "--json")).Out).RootElement.EnumerateArray().ToDictionary(w => w.GetProperty("name").GetString()!);
        var tenant = metas["cli-tenant"];
        Assert.Equal(1, tenant.GetProperty("max_concurrency_per_key").GetInt32());
        Assert.Equal(100, tenant.GetProperty("rate_limit").GetProperty("limit").GetInt32());
        Assert.Equal(TimeSpan.FromMinutes(1), TimeSpan.Parse(tenant.GetProperty("rate_limit").GetProperty("period").GetString()!, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(2, tenant.GetProperty("held_back").GetInt64());
        var key = Assert.Single(tenant.GetProperty("held_back_keys").EnumerateArray());
        Assert.Equal("tenant-42", key.GetProperty("key").GetString());
        Assert.Equal(2, key.GetProperty("ready").GetInt64());
        Assert.Equal(1, key.GetProperty("running").GetInt64());
        Assert.Equal(JsonValueKind.Null, metas["cli-double"].GetProperty("rate_limit").ValueKind);
        Assert.Equal(TimeSpan.FromMilliseconds(45_500), TimeSpan.Parse(metas["cli-debounced"].GetProperty("debounce").GetProperty("max_wait").GetString()!, System.Globalization.CultureInfo.InvariantCulture));

        gate.SetResult();
        foreach (var id in queued) await Client.GetHandle(id).ResultAsync<int>(Generous);
        Assert.Equal("0", HeldBack((await Redflow("workflows")).Out, "cli-tenant"));
    }

    /// <summary>The line of a workflow in the <c>redflow workflows</c> table.</summary>
    private static string Row(string table, string workflow) =>
        table.Split('\n').Single(l => l.StartsWith(workflow + " ", StringComparison.Ordinal));

    /// <summary>A cell of the <c>redflow workflows</c> table: a workflow's row, from its column's header to the next one's.</summary>
    private static string Cell(string table, string workflow, string column, string next)
    {
        var header = table.Split('\n')[0];
        int from = header.IndexOf(column, StringComparison.Ordinal), to = header.IndexOf(next, StringComparison.Ordinal);
        var row = Row(table, workflow);
        return row.Length <= from ? "" : row[from..Math.Min(to, row.Length)].Trim();
    }

    private static string HeldBack(string table, string workflow) => Cell(table, workflow, "HELD BACK", "RUNNING");

    private static string FlowCell(string table, string workflow) => Cell(table, workflow, "FLOW CONTROL", "HELD BACK");

    [Fact]
    public async Task Emit_checks_key_and_priority_before_it_writes()
    {
        var debounced = Workflows.Define<Order, int>("cli-debounce-bad", async ctx => ctx.Input.Amount,
            new WorkflowOptions { Debounce = new DebounceOptions(TimeSpan.FromSeconds(30)) });
        await StartWorkerAsync(new StartWorkerOptions { Workflows = [debounced, Doubler] });
        var empty = await Redflow("emit", "cli-double", "--key", " ");
        Assert.Equal(ExitCodes.Usage, empty.Code);
        Assert.Contains("--key", empty.Err);
        var braces = await Redflow("emit", "cli-double", "--key", "a{b}");
        Assert.Equal(ExitCodes.Usage, braces.Code);
        Assert.Contains("hash tag", braces.Err);
        var tooLong = await Redflow("emit", "cli-double", "--key", new string('k', 300), "--json");
        Assert.Equal(ExitCodes.Usage, JsonDocument.Parse(tooLong.Err).RootElement.GetProperty("error").GetProperty("code").GetInt32());
        Assert.Equal(ExitCodes.Usage, (await Redflow("emit", "cli-double", "--key", "a\nb")).Code);
        var notInt = await Redflow("emit", "cli-double", "--priority", "high");
        Assert.Equal(ExitCodes.Usage, notInt.Code);
        Assert.Contains("--priority", notInt.Err);
        Assert.Equal(ExitCodes.Usage, (await Redflow("emit", "cli-double", "--priority", "99999999999")).Code);
        // A debounced workflow takes no --delay (the client refuses it, nothing is written).
        var delayed = await Redflow("emit", "cli-debounce-bad", "--key", "k", "--delay", "5m");
        Assert.Equal(ExitCodes.Usage, delayed.Code);
        Assert.Contains("debounced", delayed.Err);
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "cli-double" }));
        Assert.Empty(await Client.ListRunsAsync(new ListRunsParams { Workflow = "cli-debounce-bad" }));
    }

    [Fact]
    public async Task Bare_redflow_prints_usage_with_exit_codes_and_json_errors_are_json()
    {
        var bare = await Bare([]);
        Assert.Equal(ExitCodes.Ok, bare.Code);
        Assert.Contains("Usage:", bare.Out);
        Assert.Contains("Exit codes: 0", bare.Out);
        Assert.Contains("Exit codes: 0", (await Bare(["--help"])).Out);

        var missing = await Redflow("runs", "show", "run_nope", "--json");
        Assert.Equal(ExitCodes.NotFound, missing.Code);
        var error = JsonDocument.Parse(missing.Err).RootElement.GetProperty("error");
        Assert.Equal(ExitCodes.NotFound, error.GetProperty("code").GetInt32());
        Assert.Contains("run_nope", error.GetProperty("message").GetString());
        var usage = await Redflow("runs", "frobnicate", "--json");
        Assert.Equal(ExitCodes.Usage, JsonDocument.Parse(usage.Err).RootElement.GetProperty("error").GetProperty("code").GetInt32());
    }

    [Fact]
    public async Task Inputs_from_a_file_and_stdin_list_filters_delay_queue_times_with_zone_and_utf8_json()
    {
        await StartWorkerAsync(Doubler);
        var file = Path.GetTempFileName();
        await File.WriteAllTextAsync(file, """{"id":"Jürgen 😀","amount":4}""");
        var fromFile = await Redflow("emit", "cli-double", "--input-file", file, "--wait", "--json");
        Assert.Equal(ExitCodes.Ok, fromFile.Code);
        Assert.Contains("\"run_id\"", fromFile.Out);
        var parentId = JsonDocument.Parse(fromFile.Out).RootElement.GetProperty("run_id").GetString()!;
        var output = new StringWriter();
        var code = await CliApp.RunAsync(["emit", "cli-double", "--input", "-", "--delay", "1h", "--queue", "slow-q", "--url", TestEnv.Url, "--prefix", Prefix],
            output, new StringWriter(), new StringReader("""{"id":"stdin","amount":1}"""), _ => null);
        Assert.Equal(ExitCodes.Ok, code);
        var delayed = await RunAsync(output.ToString().Trim());
        Assert.Equal(RunStatus.Scheduled, delayed.Status);
        Assert.Equal("slow-q", delayed.Queue);
        Assert.Equal("stdin", delayed.Input.GetProperty("id").GetString());
        Assert.True(delayed.AvailableAt > DateTimeOffset.UtcNow.AddMinutes(50));

        // Stored and shown as UTF-8 as it is, pretty-printed in runs show.
        var show = await Redflow("runs", "show", parentId);
        Assert.Contains("\"id\": \"Jürgen 😀\"", show.Out);
        Assert.DoesNotContain("\\u", show.Out);
        Assert.Contains(" UTC", show.Out);
        var showJson = await Redflow("runs", "show", parentId, "--json");
        Assert.Contains("Jürgen 😀", showJson.Out);
        Assert.DoesNotContain("\\u", showJson.Out);
        Assert.Equal("""{"id":"Jürgen 😀","amount":4}""", (await RunAsync(parentId)).Input.GetRawText());

        // runs list: --queue, --offset, --before, --parent.
        var byQueue = await Redflow("runs", "list", "--queue", "slow-q");
        Assert.Contains(delayed.Id, byQueue.Out);
        Assert.DoesNotContain(parentId, byQueue.Out);
        Assert.Contains(" UTC", byQueue.Out);
        var newest = await Redflow("runs", "list", "--workflow", "cli-double", "--limit", "1", "--offset", "1");
        Assert.Contains(parentId, newest.Out);
        Assert.DoesNotContain(delayed.Id, newest.Out);
        var before = await Redflow("runs", "list", "--workflow", "cli-double", "--before", delayed.CreatedAt.ToString("O"));
        Assert.DoesNotContain(delayed.Id, before.Out);
        Assert.Contains(parentId, before.Out);
        Assert.Contains("(none)", (await Redflow("runs", "list", "--parent", parentId)).Out);
        Assert.Equal(ExitCodes.Usage, (await Redflow("runs", "list", "--before", "notadate")).Code);

        // Resume: only a failed or canceled run.
        var notResumable = await Redflow("runs", "resume", parentId);
        Assert.Equal(ExitCodes.NotFound, notResumable.Code);
        Assert.Contains("nothing was changed", notResumable.Err);
        Assert.Equal(ExitCodes.Ok, (await Redflow("runs", "cancel", delayed.Id)).Code);
        var resumed = await Redflow("runs", "resume", delayed.Id);
        Assert.Equal(ExitCodes.Ok, resumed.Code);
        Assert.Contains("Resumed", resumed.Out);
        Assert.NotEqual(RunStatus.Canceled, (await RunAsync(delayed.Id)).Status); // back in its queue (or run already)
        Assert.Equal(ExitCodes.NotFound, (await Redflow("runs", "resume", "run_nope")).Code);

        // Cancel of a finished run says nothing was changed.
        var cancel = await Redflow("runs", "cancel", parentId);
        Assert.Equal(ExitCodes.NotFound, cancel.Code);
        Assert.Contains("Succeeded already; nothing was changed", cancel.Err);
    }
}
