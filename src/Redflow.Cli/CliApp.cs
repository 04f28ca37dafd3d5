using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using StackExchange.Redis;

namespace Redflow.Cli;

/// <summary>
/// The redflow command line: <c>runs list|show|cancel|rerun</c>, <c>workflows</c>, <c>stats</c>, <c>emit</c>,
/// <c>dev</c>. Global options <c>--url</c> (default <c>$REDIS_URL</c>, else <c>redis://localhost:6379</c>),
/// <c>--prefix</c> and <c>--json</c>. Built on System.CommandLine: Microsoft's own parser, trimming-friendly, with
/// help and completions, and no rendering dependency we do not need.
/// </summary>
internal static class CliApp
{
    private static readonly JsonSerializerOptions Json = new(RedflowJson.Options) { WriteIndented = false };

    /// <summary>What <c>redflow --help</c> says about exit codes.</summary>
    internal const string ExitCodesHelp =
        "Exit codes: 0 done; 1 a run waited on (emit --wait) failed, was canceled or timed out; 2 bad arguments; " +
        "3 the run or workflow does not exist (or nothing was changed); 4 Redis could not be reached.";

    /// <summary>Runs one command, writing to the given streams (so tests run it in-process); returns the exit code.</summary>
    public static Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default) =>
        RunAsync(args, output, error, Console.In, Environment.GetEnvironmentVariable, cancellationToken);

    /// <summary>
    /// Runs one command with its standard input (for <c>--input -</c>) and environment (for <c>$REDIS_URL</c>) given,
    /// so tests run it in-process; returns the exit code.
    /// </summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, TextReader input, Func<string, string?> environment, CancellationToken cancellationToken = default)
    {
        var url = new Option<string>("--url") { Description = "Redis URL (redis://, rediss:// or a StackExchange.Redis configuration string); default $REDIS_URL or redis://localhost:6379", Recursive = true };
        var prefix = new Option<string>("--prefix") { Description = "Key prefix", DefaultValueFactory = _ => "redflow", Recursive = true };
        var json = new Option<bool>("--json") { Description = "Machine-readable JSON output", Recursive = true };
        var root = new RootCommand("redflow: inspect and operate Redflow workflow runs. Times are printed in UTC with their zone. " + ExitCodesHelp) { url, prefix, json };

        var io = new Io(output, error) { JsonErrors = args.Contains("--json") };
        // Secrets of every URL the command may use, scrubbed from whatever it writes.
        io.AddSecrets(environment("REDIS_URL"));
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--url" && i + 1 < args.Length) io.AddSecrets(args[i + 1]);
            else if (args[i].StartsWith("--url=", StringComparison.Ordinal)) io.AddSecrets(args[i][6..]);
        }
        // A signal's or event's --payload: JSON, '-' for standard input, or none (null).
        async Task<(bool Ok, JsonElement? Payload, string? Problem)> ReadPayloadAsync(string? text, CancellationToken ct)
        {
            if (text is null) return (true, null, null);
            var source = "--payload";
            if (text == "-")
            {
                text = await input.ReadToEndAsync(ct);
                source = "standard input";
            }
            try { return (true, JsonDocument.Parse(text).RootElement.Clone(), null); }
            catch (JsonException ex) { return (false, null, $"{source} is not valid JSON: {ex.Message}"); }
        }
        Func<ParseResult, CancellationToken, Task<int>> With(Func<IRedflowClient, ParseResult, CancellationToken, Task<int>> body) =>
            async (parse, ct) =>
            {
                var target = parse.GetValue(url) ?? environment("REDIS_URL") ?? "redis://localhost:6379";
                IRedflowClient client;
                try { client = RedflowClient.Create(new RedflowClientOptions { Url = target, Prefix = parse.GetValue(prefix)! }); }
                catch (ArgumentException ex) { return io.Fail(ExitCodes.Usage, Message(ex)); }
                await using (client)
                {
                    try { return await body(client, parse, ct); }
                    catch (Exception ex) when (ex is RedisConnectionException or RedisTimeoutException or RedflowException { InnerException: RedisException }
                                               || (ex is RedisServerException && (ex.Message.Contains("NOAUTH", StringComparison.Ordinal) || ex.Message.Contains("WRONGPASS", StringComparison.Ordinal))))
                    {
                        return io.Fail(ExitCodes.RedisUnavailable, $"Cannot reach Redis at {Secrets.Redact(target)}: {Secrets.Short(ex)}.");
                    }
                    catch (UnknownWorkflowException ex) { return io.Fail(ExitCodes.NotFound, ex.Message); }
                    catch (ArgumentException ex) { return io.Fail(ExitCodes.Usage, Message(ex)); }
                }
            };

        // runs list
        var workflowOpt = new Option<string?>("--workflow") { Description = "Only runs of this workflow" };
        var statusOpt = new Option<RunStatus?>("--status") { Description = "Only runs in this status" };
        var limitOpt = new Option<int>("--limit") { Description = "At most this many runs (1 to 1000)", DefaultValueFactory = _ => 20 };
        var offsetOpt = new Option<int>("--offset") { Description = "Skip this many runs (paging)" };
        var beforeOpt = new Option<string?>("--before") { Description = "Only runs created before this time (ISO 8601; UTC when no zone is given)" };
        var afterOpt = new Option<string?>("--after") { Description = "Only runs created at or after this time" };
        var parentOpt = new Option<string?>("--parent") { Description = "Only children of this run" };
        var queueOpt = new Option<string?>("--queue") { Description = "Only runs on this queue" };
        var list = new Command("list", "List runs, newest first") { workflowOpt, statusOpt, limitOpt, offsetOpt, beforeOpt, afterOpt, parentOpt, queueOpt };
        list.SetAction(With(async (client, p, ct) =>
        {
            if (!TryTime(p.GetValue(beforeOpt), "--before", out var before, out var bad) || !TryTime(p.GetValue(afterOpt), "--after", out var after, out bad))
                return io.Fail(ExitCodes.Usage, bad!);
            var runs = await client.ListRunsAsync(new ListRunsParams
            {
                Workflow = p.GetValue(workflowOpt), Status = p.GetValue(statusOpt), Limit = p.GetValue(limitOpt), Offset = p.GetValue(offsetOpt),
                Before = before, After = after, ParentRunId = p.GetValue(parentOpt), Queue = p.GetValue(queueOpt),
            }, ct);
            if (p.GetValue(json)) return io.Json(runs);
            io.Table(["ID", "WORKFLOW", "QUEUE", "STATUS", "ATTEMPT", "PARENT", "CREATED", "FINISHED"],
                runs.Select(r => new[] { r.Id, r.Workflow, r.Queue, r.Status.ToString(), $"{r.Attempt}/{r.MaxAttempts}", r.ParentRunId ?? "-", Time(r.CreatedAt), Time(r.FinishedAt) }));
            return ExitCodes.Ok;
        }));

        // runs show
        var runId = new Argument<string>("id") { Description = "The run id" };
        var show = new Command("show", "Show a run and its steps") { runId };
        show.SetAction(With(async (client, p, ct) =>
        {
            var id = p.GetValue(runId)!;
            var run = await client.GetRunAsync(id, ct);
            if (run is null) return io.Fail(ExitCodes.NotFound, $"Run {id} does not exist (or its retention has passed).");
            var steps = await client.GetRunStepsAsync(id, ct);
            if (p.GetValue(json)) return io.Json(new { run, steps });
            var lease = run.Status == RunStatus.Running ? await client.GetRunLeaseAsync(id, ct) : null;
            io.Line($"run       {run.Id}");
            io.Line($"workflow  {run.Workflow} (queue {run.Queue})");
            io.Line($"status    {run.Status}, attempt {run.Attempt}/{run.MaxAttempts}, resumes {run.Resumes}");
            io.Line($"created   {Time(run.CreatedAt)}   started {Time(run.StartedAt)}   finished {Time(run.FinishedAt)}");
            if (lease is not null) io.Line($"worker    {lease.App ?? "?"} (node {lease.Node}), lease until {Time(lease.Deadline)}");
            if (lease?.CurrentStep is { } current) io.Line($"in step   {current} (as of the last lease renewal)");
            if (run.Key is not null) io.Line($"key       {run.Key} (flow control)");
            if (run.Priority != 0) io.Line($"priority  {run.Priority.ToString(CultureInfo.InvariantCulture)}");
            if (run.ParentRunId is not null) io.Line($"parent    {run.ParentRunId}");
            if (run.RerunOf is not null) io.Line($"rerun of  {run.RerunOf}");
            if (run.CancelReason is not null) io.Line($"canceled  {run.CancelReason}");
            foreach (var w in run.Waits)
                io.Line($"waits on  {w.Kind.ToString().ToLowerInvariant()} {w.Name ?? ""}{(w.Key is null ? "" : $" key {w.Key}")} (step {w.Step}){(w.Until is { } u ? $" until {Time(u)}" : "")}");
            io.Line($"input     {Indent(RedflowJson.Format(run.Input))}");
            if (run.Output is { } o) io.Line($"output    {Indent(RedflowJson.Format(o))}");
            if (run.Error is { } e)
            {
                io.Line($"error     {e.Type}: {e.Message}");
                if (e.StackTrace is { Length: > 0 } st) io.Line($"          {Indent(st.Trim())}");
            }
            io.Line("");
            io.Table(["STEP", "STATUS", "ATTEMPT", "DURATION", "RESULT"], steps.Select(s => new[]
            {
                s.Name, s.Status.ToString(), s.Attempt.ToString(CultureInfo.InvariantCulture),
                s.StartedAt is { } a && s.FinishedAt is { } b ? $"{(b - a).TotalMilliseconds:F0} ms" : "",
                s.Error is { } err ? $"{err.Type}: {err.Message}" : Truncate(s.Output is { } so ? RedflowJson.Format(so, indented: false) : "", 60),
            }));
            return ExitCodes.Ok;
        }));

        // runs cancel
        var reasonOpt = new Option<string?>("--reason") { Description = "Why (stored with the run)" };
        var cancel = new Command("cancel", "Cancel a run") { runId, reasonOpt };
        cancel.SetAction(With(async (client, p, ct) =>
        {
            var id = p.GetValue(runId)!;
            var recorded = await client.CancelRunAsync(id, p.GetValue(reasonOpt), ct);
            if (recorded)
            {
                if (p.GetValue(json)) return io.Json(new { run_id = id, canceled = true });
                io.Line($"Cancel of {id} recorded.");
                return ExitCodes.Ok;
            }
            var run = await client.GetRunAsync(id, ct);
            return io.Fail(ExitCodes.NotFound, run is null
                ? $"Run {id} does not exist (or its retention has passed); nothing was changed."
                : $"Run {id} is {run.Status} already; nothing was changed.");
        }));

        // runs rerun
        var rerun = new Command("rerun", "Start a new run with a run's workflow and input") { runId };
        rerun.SetAction(With(async (client, p, ct) =>
        {
            var id = p.GetValue(runId)!;
            if (await client.GetRunAsync(id, ct) is null) return io.Fail(ExitCodes.NotFound, $"Run {id} does not exist (or its retention has passed).");
            var handle = await client.RerunAsync(id, ct);
            if (p.GetValue(json)) return io.Json(new { run_id = handle.RunId, rerun_of = id });
            io.Line(handle.RunId);
            return ExitCodes.Ok;
        }));

        // runs signal
        var signalArg = new Argument<string>("signal") { Description = "The signal name" };
        var payloadOpt = new Option<string?>("--payload") { Description = "The payload, as JSON (default null); - reads it from standard input" };
        var signal = new Command("signal", "Send a signal to a run (buffered until a wait of that name takes it)") { runId, signalArg, payloadOpt };
        signal.SetAction(With(async (client, p, ct) =>
        {
            var id = p.GetValue(runId)!;
            var (ok, payload, problem) = await ReadPayloadAsync(p.GetValue(payloadOpt), ct);
            if (!ok) return io.Fail(ExitCodes.Usage, problem!);
            if (await client.SignalRunAsync(id, p.GetValue(signalArg)!, payload, ct))
            {
                if (p.GetValue(json)) return io.Json(new { run_id = id, signal = p.GetValue(signalArg), delivered = true });
                io.Line($"Signal '{p.GetValue(signalArg)}' delivered to {id}.");
                return ExitCodes.Ok;
            }
            var run = await client.GetRunAsync(id, ct);
            return io.Fail(ExitCodes.NotFound, run is null
                ? $"Run {id} does not exist (or its retention has passed); nothing was sent."
                : $"Run {id} is {run.Status} already; nothing was sent.");
        }));


        // events send
        var eventArg = new Argument<string>("name") { Description = "The event name" };
        var eventKeyOpt = new Option<string?>("--key") { Description = "The event's key: only waits with this key take it" };
        var eventIdemOpt = new Option<string?>("--idempotency-key") { Description = "Send at most one event per key and event name (within the retention)" };
        var send = new Command("send", "Send an event: waiting runs take it, triggered workflows start") { eventArg, eventKeyOpt, payloadOpt, eventIdemOpt };
        send.SetAction(With(async (client, p, ct) =>
        {
            var (ok, payload, problem) = await ReadPayloadAsync(p.GetValue(payloadOpt), ct);
            if (!ok) return io.Fail(ExitCodes.Usage, problem!);
            var sent = await client.SendEventAsync(p.GetValue(eventArg)!, payload,
                new SendEventOptions { Key = p.GetValue(eventKeyOpt), IdempotencyKey = p.GetValue(eventIdemOpt) }, ct);
            if (p.GetValue(json)) return io.Json(new { event_id = sent.EventId, runs_resumed = sent.RunsResumed, runs_started = sent.RunsStarted });
            io.Line($"{sent.EventId}: {sent.RunsResumed} waiting runs resumed, {sent.RunsStarted} runs started.");
            return ExitCodes.Ok;
        }));
        var events = new Command("events", "Events: send") { send };
        // runs resume
        var resume = new Command("resume", "Take a failed or canceled run back to the queue as the same run, from where it stopped") { runId };
        resume.SetAction(With(async (client, p, ct) =>
        {
            var id = p.GetValue(runId)!;
            var before = await client.GetRunAsync(id, ct);
            if (before is null) return io.Fail(ExitCodes.NotFound, $"Run {id} does not exist (or its retention has passed).");
            if (before.Status is not (RunStatus.Failed or RunStatus.Canceled))
                return io.Fail(ExitCodes.NotFound, $"Run {id} is {before.Status}; only a failed or canceled run can be resumed; nothing was changed.");
            await client.ResumeRunAsync(id, ct);
            if (p.GetValue(json)) return io.Json(new { run_id = id, resumed = true });
            io.Line($"Resumed {id}: back in its queue, its recorded steps kept.");
            return ExitCodes.Ok;
        }));

        var runs = new Command("runs", "Runs: list, show, cancel, rerun, resume, signal") { list, show, cancel, rerun, resume, signal };

        // workflows
        var workflows = new Command("workflows", "Registered workflows");
        workflows.SetAction(With(async (client, p, ct) =>
        {
            var all = await client.ListWorkflowsAsync(ct);
            if (p.GetValue(json)) return io.Json(all);
            io.Table(["WORKFLOW", "QUEUE", "MAX CONC.", "ATTEMPTS", "FLOW CONTROL", "HELD BACK", "RUNNING", "QUEUED", "FAILED", "NEXT CRON", "WORKERS"], all.Select(w => new[]
            {
                w.Name, w.Queue, w.MaxConcurrency.ToString(CultureInfo.InvariantCulture), w.MaxAttempts.ToString(CultureInfo.InvariantCulture),
                FlowControl(w), N(w.HeldBack),
                Count(w.RunCounts, RunStatus.Running), Count(w.RunCounts, RunStatus.Queued), Count(w.RunCounts, RunStatus.Failed),
                Time(w.Cron.Where(c => !c.Paused).Select(c => c.NextFireAt).Where(n => n is not null).Min()), string.Join(",", w.Workers.Select(x => x.App)),
            }));
            return ExitCodes.Ok;
        }));

        // stats
        var watchOpt = new Option<bool>("--watch") { Description = "Refresh every 2 s until Ctrl+C" };
        var stats = new Command("stats", "Queues, run counts, workers and counters") { watchOpt };
        stats.SetAction(With(async (client, p, ct) =>
        {
            do
            {
                var s = await client.GetStatsAsync(ct);
                if (p.GetValue(json)) io.Json(s);
                else PrintStats(io, s);
                if (!p.GetValue(watchOpt)) break;
                try { await Task.Delay(TimeSpan.FromSeconds(2), ct); } catch (OperationCanceledException) { break; }
            } while (!ct.IsCancellationRequested);
            return ExitCodes.Ok;
        }));

        // emit
        var workflowArg = new Argument<string>("workflow") { Description = "The workflow name" };
        var inputOpt = new Option<string?>("--input") { Description = "The input, as JSON; - reads it from standard input" };
        var inputFileOpt = new Option<string?>("--input-file") { Description = "Read the input JSON from this file (- for standard input)" };
        var delayOpt = new Option<string?>("--delay") { Description = "Start after this delay on the Redis clock: 30s, 5m, 2h, 1d or hh:mm:ss" };
        var emitQueueOpt = new Option<string?>("--queue") { Description = "Run on this queue instead of the workflow's own" };
        var keyOpt = new Option<string?>("--idempotency-key") { Description = "Emit at most one run per key" };
        var flowKeyOpt = new Option<string?>("--key") { Description = "The run's flow-control key (a tenant, a user): MaxConcurrencyPerKey, RateLimit and Debounce apply per key" };
        var priorityOpt = new Option<int>("--priority") { Description = "Claimed before ready runs of lower priority on its queue (default 0; may be negative)" };
        var runAtOpt = new Option<string?>("--run-at") { Description = "Start no earlier than this time (ISO 8601; UTC when no zone is given)" };
        var waitOpt = new Option<bool>("--wait") { Description = "Wait for the result (exit 1 if the run does not succeed)" };
        var timeoutOpt = new Option<int>("--timeout") { Description = "Seconds to wait with --wait (positive)", DefaultValueFactory = _ => 60 };
        var emit = new Command("emit", "Emit a run") { workflowArg, inputOpt, inputFileOpt, keyOpt, flowKeyOpt, priorityOpt, runAtOpt, delayOpt, emitQueueOpt, waitOpt, timeoutOpt };
        emit.SetAction(With(async (client, p, ct) =>
        {
            // Every argument is checked before anything is written.
            if (p.GetValue(waitOpt) && p.GetValue(timeoutOpt) <= 0)
                return io.Fail(ExitCodes.Usage, $"--timeout {p.GetValue(timeoutOpt)} must be a positive number of seconds.");
            if (p.GetValue(inputOpt) is not null && p.GetValue(inputFileOpt) is not null)
                return io.Fail(ExitCodes.Usage, "Give --input or --input-file, not both.");
            if (p.GetValue(flowKeyOpt) is { } flowKey && KeyProblem(flowKey) is { } keyProblem)
                return io.Fail(ExitCodes.Usage, keyProblem);
            string? text = p.GetValue(inputOpt), source = "--input";
            if (text == "-" || p.GetValue(inputFileOpt) == "-")
            {
                text = await input.ReadToEndAsync(ct);
                source = "standard input";
            }
            else if (p.GetValue(inputFileOpt) is { } file)
            {
                try { text = await File.ReadAllTextAsync(file, ct); }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return io.Fail(ExitCodes.Usage, $"--input-file '{file}' cannot be read: {ex.Message}"); }
                source = $"--input-file '{file}'";
            }
            JsonElement? inputJson = null;
            if (text is not null)
            {
                try { inputJson = JsonDocument.Parse(text).RootElement.Clone(); }
                catch (JsonException ex) { return io.Fail(ExitCodes.Usage, $"{source} is not valid JSON: {ex.Message}"); }
            }
            if (!TryTime(p.GetValue(runAtOpt), "--run-at", out var runAt, out var bad)) return io.Fail(ExitCodes.Usage, bad!);
            TimeSpan? delay = null;
            if (p.GetValue(delayOpt) is { } d)
            {
                if (ParseDelay(d) is not { } parsed) return io.Fail(ExitCodes.Usage, $"--delay '{d}' is not a duration: use 30s, 5m, 2h, 1d or hh:mm:ss.");
                delay = parsed;
            }
            if (runAt is not null && delay is not null) return io.Fail(ExitCodes.Usage, "Give --run-at or --delay, not both.");
            var handle = await client.EmitWorkflowAsync(p.GetValue(workflowArg)!, inputJson,
                new EmitOptions
                {
                    IdempotencyKey = p.GetValue(keyOpt), RunAt = runAt, Delay = delay, Queue = p.GetValue(emitQueueOpt),
                    Key = p.GetValue(flowKeyOpt), Priority = p.GetValue(priorityOpt),
                }, ct);
            if (!p.GetValue(waitOpt))
            {
                if (p.GetValue(json)) return io.Json(new { run_id = handle.RunId });
                io.Line(handle.RunId);
                return ExitCodes.Ok;
            }
            using var spinner = p.GetValue(json) ? null : Spinner.Start(io, $"waiting for {handle.RunId}");
            try
            {
                var result = await handle.ResultAsync(TimeSpan.FromSeconds(p.GetValue(timeoutOpt)), ct);
                spinner?.Dispose();
                if (p.GetValue(json)) return io.Json(new { run_id = handle.RunId, status = RunStatus.Succeeded, output = result });
                io.Line($"{handle.RunId} succeeded: {RedflowJson.Format(result)}");
                return ExitCodes.Ok;
            }
            catch (Exception ex) when (ex is RunFailedException or CanceledException or RedflowTimeoutException)
            {
                spinner?.Dispose();
                return io.Fail(ExitCodes.RunNotSucceeded, ex.Message, handle.RunId);
            }
        }));

        // cron pause | resume | trigger
        var cronWorkflowArg = new Argument<string>("workflow") { Description = "The workflow" };
        var cronTriggerArg = new Argument<string>("trigger") { Description = "The cron trigger id (redflow workflows --json lists them)" };
        async Task<(CronTriggerInfo? Trigger, int Code)> FindTrigger(IRedflowClient client, ParseResult p, CancellationToken ct)
        {
            var (wf, id) = (p.GetValue(cronWorkflowArg)!, p.GetValue(cronTriggerArg)!);
            var meta = await client.GetWorkflowMetaAsync(wf, ct);
            if (meta is null) return (null, io.Fail(ExitCodes.NotFound, $"Workflow '{wf}' is not registered; nothing was changed."));
            var trigger = meta.Cron.FirstOrDefault(c => c.Id == id);
            if (trigger is null)
                return (null, io.Fail(ExitCodes.NotFound, $"Workflow '{wf}' has no cron trigger '{id}' " +
                    (meta.Cron.Count == 0 ? "(it has no cron triggers)" : $"(its triggers: {string.Join(", ", meta.Cron.Select(c => $"'{c.Id}'"))})") + "; nothing was changed."));
            return (trigger, ExitCodes.Ok);
        }
        Command CronSwitch(string name, bool pause)
        {
            var command = new Command(name, pause
                ? "Pause a cron trigger: it fires nothing, and the instants that pass meanwhile are skipped"
                : "Resume a paused cron trigger (the instants that passed while paused are not fired)") { cronWorkflowArg, cronTriggerArg };
            command.SetAction(With(async (client, p, ct) =>
            {
                var (trigger, code) = await FindTrigger(client, p, ct);
                if (trigger is null) return code;
                var (wf, id) = (p.GetValue(cronWorkflowArg)!, p.GetValue(cronTriggerArg)!);
                var changed = pause ? await client.PauseCronTriggerAsync(wf, id, ct) : await client.ResumeCronTriggerAsync(wf, id, ct);
                if (p.GetValue(json)) return io.Json(new { workflow = wf, trigger = id, paused = pause, changed });
                io.Line(changed ? $"Cron trigger '{id}' of {wf} {(pause ? "paused" : "resumed")}." : $"Cron trigger '{id}' of {wf} is {(pause ? "paused" : "not paused")} already; nothing was changed.");
                return ExitCodes.Ok;
            }));
            return command;
        }
        var cronTrigger = new Command("trigger", "Start one run of the workflow now, with the cron trigger's input") { cronWorkflowArg, cronTriggerArg };
        cronTrigger.SetAction(With(async (client, p, ct) =>
        {
            var (trigger, code) = await FindTrigger(client, p, ct);
            if (trigger is null) return code;
            var handle = await client.TriggerCronNowAsync(p.GetValue(cronWorkflowArg)!, trigger.Id, ct);
            if (p.GetValue(json)) return io.Json(new { run_id = handle.RunId, workflow = p.GetValue(cronWorkflowArg), trigger = trigger.Id });
            io.Line(handle.RunId);
            return ExitCodes.Ok;
        }));
        var cron = new Command("cron", "Cron triggers: pause, resume, trigger now") { CronSwitch("pause", true), CronSwitch("resume", false), cronTrigger };

        // dev
        var dev = new Command("dev", "Start a private redis-server on a free loopback port and print the URL to use");
        dev.SetAction((p, ct) => Task.FromResult(StartDevRedis(io, p.GetValue(json))));

        root.Subcommands.Add(runs);
        root.Subcommands.Add(workflows);
        root.Subcommands.Add(stats);
        root.Subcommands.Add(emit);
        root.Subcommands.Add(events);
        root.Subcommands.Add(cron);
        root.Subcommands.Add(dev);

        if (args.Length == 0) args = ["--help"]; // bare redflow prints its usage
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            return io.Fail(ExitCodes.Usage, string.Join(" ", parse.Errors.Select(e => e.Message)) + " (see redflow --help)");
        }
        return await parse.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);
    }

    private static void PrintStats(Io io, RedflowStats s)
    {
        io.Table(["QUEUE", "READY", "SCHEDULED", "RUNNING"], s.Queues.Select(q => new[] { q.Name, N(q.Ready), N(q.Scheduled), N(q.Running) }));
        io.Line("");
        io.Line("runs: " + string.Join("  ", Enum.GetValues<RunStatus>().Select(st => $"{st.ToString().ToLowerInvariant()} {Count(s.RunCounts, st)}")));
        io.Line("counters: " + string.Join("  ", s.Counters.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key} {c.Value}")));
        io.Line("");
        io.Table(["WORKER", "NODE", "QUEUES", "CONCURRENCY", "LAST SEEN"],
            s.Workers.Select(w => new[] { w.App, w.Node, string.Join(",", w.Queues), N(w.Concurrency), Time(w.LastSeen) }));
    }

    private static int StartDevRedis(Io io, bool json)
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        var dir = Directory.CreateTempSubdirectory("redflow-dev-").FullName;
        try
        {
            using var process = Process.Start(new ProcessStartInfo("redis-server",
                ["--bind", "127.0.0.1", "--port", port.ToString(CultureInfo.InvariantCulture), "--dir", dir, "--appendonly", "yes",
                 "--maxmemory-policy", "noeviction", "--daemonize", "yes", "--pidfile", Path.Combine(dir, "redis.pid")])
            { UseShellExecute = false, RedirectStandardOutput = true })!;
            process.WaitForExit();
            if (process.ExitCode != 0) return io.Fail(ExitCodes.RedisUnavailable, $"redis-server exited with code {process.ExitCode}.");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return io.Fail(ExitCodes.Usage, "redis-server is not on PATH: install it (e.g. apt-get install redis-server) or give --url.");
        }
        var redisUrl = $"redis://127.0.0.1:{port}";
        if (json) return io.Json(new { url = redisUrl, data_dir = dir });
        io.Line($"export REDIS_URL={redisUrl}");
        io.Line($"# data in {dir}; stop it with: redis-cli -p {port} shutdown");
        return ExitCodes.Ok;
    }

    /// <summary>
    /// What is wrong with a <c>--key</c>, or null: the client checks it again before it writes, but the CLI says so
    /// before it reads the input or touches Redis, like its other options.
    /// </summary>
    internal static string? KeyProblem(string key)
    {
        if (string.IsNullOrWhiteSpace(key)) return "--key must not be empty.";
        if (key.Length > 256) return $"--key is {key.Length} characters long; at most 256 are allowed.";
        if (key.Any(char.IsControl)) return "--key contains a control character.";
        if (key.AsSpan().IndexOfAny('{', '}') >= 0) return "--key contains '{' or '}', which Redflow keeps for its key hash tag.";
        return null;
    }

    /// <summary>A workflow's flow-control limits in one cell: <c>per-key 2; 100/1m; debounce 30s (max 5m)</c>, or <c>-</c>.</summary>
    internal static string FlowControl(WorkflowMeta w)
    {
        var parts = new List<string>();
        if (w.MaxConcurrencyPerKey is { } cap) parts.Add($"per-key {N(cap)}");
        if (w.RateLimit is { } r) parts.Add($"{N(r.Limit)}/{Span(r.Period)}");
        if (w.Debounce is { } d) parts.Add($"debounce {Span(d.Period)}{(d.MaxWait is { } max ? $" (max {Span(max)})" : "")}");
        return parts.Count == 0 ? "-" : string.Join("; ", parts);
    }

    /// <summary>A period as <c>--delay</c> takes it: <c>1d</c>, <c>2h</c>, <c>5m</c>, <c>30s</c>, else <c>250ms</c>.</summary>
    internal static string Span(TimeSpan t)
    {
        (long Ticks, string Suffix)[] units = [(TimeSpan.TicksPerDay, "d"), (TimeSpan.TicksPerHour, "h"), (TimeSpan.TicksPerMinute, "m"), (TimeSpan.TicksPerSecond, "s")];
        foreach (var (ticks, suffix) in units)
            if (t.Ticks > 0 && t.Ticks % ticks == 0) return $"{N(t.Ticks / ticks)}{suffix}";
        return $"{t.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture)}ms";
    }

    private static string Time(DateTimeOffset? t) => t is { } v ? v.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC" : "-";

    /// <summary>An argument error's message without the "(Parameter 'x')" suffix.</summary>
    private static string Message(ArgumentException ex) =>
        ex.ParamName is { } name ? ex.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : ex.Message;

    private static string Indent(string text) => text.Replace("\n", "\n          ", StringComparison.Ordinal);

    /// <summary>Parses a time option (ISO 8601; UTC when it has no zone), or says what is wrong.</summary>
    private static bool TryTime(string? text, string option, out DateTimeOffset? value, out string? problem)
    {
        value = null;
        problem = null;
        if (text is null) return true;
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t))
        {
            value = t;
            return true;
        }
        problem = $"{option} '{text}' is not a time (use ISO 8601, e.g. 2026-01-31T09:00:00Z).";
        return false;
    }

    /// <summary>30s, 5m, 2h, 1d, 250ms or a TimeSpan (hh:mm:ss); null when it is none of them or negative.</summary>
    internal static TimeSpan? ParseDelay(string text)
    {
        text = text.Trim();
        (string Suffix, double Ms)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
        foreach (var (suffix, ms) in units)
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(text[..^suffix.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)
                && (suffix != "m" || !text.EndsWith("ms", StringComparison.OrdinalIgnoreCase)))
                return TimeSpan.FromMilliseconds(n * ms);
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span >= TimeSpan.Zero ? span : null;
    }

    private static string N(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Count(IReadOnlyDictionary<RunStatus, long> counts, RunStatus status) => N(counts.GetValueOrDefault(status));

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";

    /// <summary>Where a command writes: plain lines, tables, JSON and errors.</summary>
    private sealed class Io(TextWriter output, TextWriter error)
    {
        private readonly List<string> _secrets = [];

        public TextWriter Err => error;

        /// <summary>With <c>--json</c>: errors are written as one JSON object, <c>{"error": {"code", "message"}}</c>.</summary>
        public bool JsonErrors { get; init; }

        /// <summary>Remembers the secrets of a URL so that nothing written shows them.</summary>
        public void AddSecrets(string? url) => _secrets.AddRange(Secrets.Of(url));

        private string Scrub(string text) => Secrets.Scrub(text, _secrets);

        public void Line(string text) => output.WriteLine(Scrub(text));

        public void Error(string text) => error.WriteLine(Scrub($"redflow: {text}"));

        public int Fail(int code, string message, string? runId = null)
        {
            if (JsonErrors)
            {
                var body = new Dictionary<string, object?> { ["code"] = code, ["message"] = message };
                if (runId is not null) body["run_id"] = runId;
                error.WriteLine(Scrub(JsonSerializer.Serialize(new { error = body }, CliApp.Json)));
            }
            else
                Error(runId is null || message.Contains(runId, StringComparison.Ordinal) ? message : $"{runId}: {message}");
            return code;
        }

        public int Json<T>(T value)
        {
            // Through a JsonElement so that text is written as it is (no \uXXXX escapes but JSON's own).
            output.WriteLine(Scrub(RedflowJson.Format(JsonSerializer.SerializeToElement(value, CliApp.Json), indented: false)));
            return ExitCodes.Ok;
        }

        public void Table(string[] headers, IEnumerable<string[]> rows)
        {
            var all = rows.ToList();
            var widths = headers.Select((h, i) => Math.Max(h.Length, all.Count == 0 ? 0 : all.Max(r => r[i].Length))).ToArray();
            output.WriteLine(string.Join("  ", headers.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
            foreach (var row in all) output.WriteLine(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
            if (all.Count == 0) output.WriteLine("(none)");
        }
    }

    /// <summary>A spinner on the error stream while <c>emit --wait</c> waits (only on a terminal).</summary>
    private sealed class Spinner : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _task;

        private Spinner(Io io, string text)
        {
            _task = Task.Run(async () =>
            {
                var frames = "|/-\\";
                for (var i = 0; !_stop.IsCancellationRequested; i++)
                {
                    await io.Err.WriteAsync($"\r{frames[i % frames.Length]} {text}");
                    try { await Task.Delay(120, _stop.Token); } catch (OperationCanceledException) { }
                }
                await io.Err.WriteAsync("\r" + new string(' ', text.Length + 2) + "\r");
            });
        }

        public static Spinner? Start(Io io, string text) => Console.IsErrorRedirected || io.Err != Console.Error ? null : new Spinner(io, text);

        public void Dispose()
        {
            if (_stop.IsCancellationRequested) return;
            _stop.Cancel();
            _task.Wait(TimeSpan.FromSeconds(1));
            _stop.Dispose();
        }
    }
}
