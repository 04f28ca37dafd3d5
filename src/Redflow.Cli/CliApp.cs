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

    /// <summary>Runs one command, writing to the given streams (so tests run it in-process); returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        var url = new Option<string>("--url") { Description = "Redis URL (redis://, rediss:// or a StackExchange.Redis configuration string); default $REDIS_URL or redis://localhost:6379", Recursive = true };
        var prefix = new Option<string>("--prefix") { Description = "Key prefix", DefaultValueFactory = _ => "redflow", Recursive = true };
        var json = new Option<bool>("--json") { Description = "Machine-readable JSON output", Recursive = true };
        var root = new RootCommand("redflow: inspect and operate Redflow workflow runs") { url, prefix, json };

        var io = new Io(output, error);
        Func<ParseResult, CancellationToken, Task<int>> With(Func<IRedflowClient, ParseResult, CancellationToken, Task<int>> body) =>
            async (parse, ct) =>
            {
                var target = parse.GetValue(url) ?? Environment.GetEnvironmentVariable("REDIS_URL") ?? "redis://localhost:6379";
                IRedflowClient client;
                try { client = RedflowClient.Create(new RedflowClientOptions { Url = target, Prefix = parse.GetValue(prefix)! }); }
                catch (ArgumentException ex) { return io.Fail(ExitCodes.Usage, ex.Message); }
                await using (client)
                {
                    try { return await body(client, parse, ct); }
                    catch (Exception ex) when (ex is RedisConnectionException or RedisTimeoutException)
                    {
                        return io.Fail(ExitCodes.RedisUnavailable, $"Cannot reach Redis at {target}: {ex.Message}");
                    }
                    catch (UnknownWorkflowException ex) { return io.Fail(ExitCodes.NotFound, ex.Message); }
                    catch (ArgumentException ex) { return io.Fail(ExitCodes.Usage, ex.Message); }
                }
            };

        // runs list
        var workflowOpt = new Option<string?>("--workflow") { Description = "Only runs of this workflow" };
        var statusOpt = new Option<RunStatus?>("--status") { Description = "Only runs in this status" };
        var limitOpt = new Option<int>("--limit") { Description = "At most this many runs", DefaultValueFactory = _ => 20 };
        var list = new Command("list", "List runs, newest first") { workflowOpt, statusOpt, limitOpt };
        list.SetAction(With(async (client, p, ct) =>
        {
            var runs = await client.ListRunsAsync(new ListRunsParams { Workflow = p.GetValue(workflowOpt), Status = p.GetValue(statusOpt), Limit = p.GetValue(limitOpt) }, ct);
            if (p.GetValue(json)) return io.Json(runs);
            io.Table(["ID", "WORKFLOW", "STATUS", "ATTEMPT", "CREATED", "FINISHED"],
                runs.Select(r => new[] { r.Id, r.Workflow, r.Status.ToString(), $"{r.Attempt}/{r.MaxAttempts}", Time(r.CreatedAt), Time(r.FinishedAt) }));
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
            io.Line($"run       {run.Id}");
            io.Line($"workflow  {run.Workflow} (queue {run.Queue})");
            io.Line($"status    {run.Status}, attempt {run.Attempt}/{run.MaxAttempts}, resumes {run.Resumes}");
            io.Line($"created   {Time(run.CreatedAt)}   started {Time(run.StartedAt)}   finished {Time(run.FinishedAt)}");
            if (run.ParentRunId is not null) io.Line($"parent    {run.ParentRunId}");
            if (run.RerunOf is not null) io.Line($"rerun of  {run.RerunOf}");
            if (run.CancelReason is not null) io.Line($"canceled  {run.CancelReason}");
            io.Line($"input     {run.Input.GetRawText()}");
            if (run.Output is { } o) io.Line($"output    {o.GetRawText()}");
            if (run.Error is { } e) io.Line($"error     {e.Type}: {e.Message}");
            io.Line("");
            io.Table(["STEP", "STATUS", "ATTEMPT", "DURATION", "RESULT"], steps.Select(s => new[]
            {
                s.Name, s.Status.ToString(), s.Attempt.ToString(CultureInfo.InvariantCulture),
                s.StartedAt is { } a && s.FinishedAt is { } b ? $"{(b - a).TotalMilliseconds:F0} ms" : "",
                s.Error is { } err ? $"{err.Type}: {err.Message}" : Truncate(s.Output?.GetRawText() ?? "", 60),
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
            if (p.GetValue(json)) io.Json(new { run_id = id, canceled = recorded });
            else io.Line(recorded ? $"Cancel of {id} recorded." : $"Run {id} is unknown or already finished; nothing to cancel.");
            return recorded ? ExitCodes.Ok : ExitCodes.NotFound;
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

        var runs = new Command("runs", "Runs: list, show, cancel, rerun") { list, show, cancel, rerun };

        // workflows
        var workflows = new Command("workflows", "Registered workflows");
        workflows.SetAction(With(async (client, p, ct) =>
        {
            var all = await client.ListWorkflowsAsync(ct);
            if (p.GetValue(json)) return io.Json(all);
            io.Table(["WORKFLOW", "QUEUE", "MAX CONC.", "ATTEMPTS", "RUNNING", "QUEUED", "FAILED", "NEXT CRON", "WORKERS"], all.Select(w => new[]
            {
                w.Name, w.Queue, w.MaxConcurrency.ToString(CultureInfo.InvariantCulture), w.MaxAttempts.ToString(CultureInfo.InvariantCulture),
                Count(w.RunCounts, RunStatus.Running), Count(w.RunCounts, RunStatus.Queued), Count(w.RunCounts, RunStatus.Failed),
                Time(w.Cron.Select(c => c.NextFireAt).Where(n => n is not null).Min()), string.Join(",", w.Workers.Select(x => x.App)),
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
        var inputOpt = new Option<string?>("--input") { Description = "The input, as JSON" };
        var keyOpt = new Option<string?>("--idempotency-key") { Description = "Emit at most one run per key" };
        var runAtOpt = new Option<string?>("--run-at") { Description = "Start no earlier than this time (ISO 8601)" };
        var waitOpt = new Option<bool>("--wait") { Description = "Wait for the result (exit 1 if the run does not succeed)" };
        var timeoutOpt = new Option<int>("--timeout") { Description = "Seconds to wait with --wait", DefaultValueFactory = _ => 60 };
        var emit = new Command("emit", "Emit a run") { workflowArg, inputOpt, keyOpt, runAtOpt, waitOpt, timeoutOpt };
        emit.SetAction(With(async (client, p, ct) =>
        {
            JsonElement? input = null;
            if (p.GetValue(inputOpt) is { } text)
            {
                try { input = JsonDocument.Parse(text).RootElement.Clone(); }
                catch (JsonException ex) { return io.Fail(ExitCodes.Usage, $"--input is not valid JSON: {ex.Message}"); }
            }
            DateTimeOffset? runAt = null;
            if (p.GetValue(runAtOpt) is { } at)
            {
                if (!DateTimeOffset.TryParse(at, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
                    return io.Fail(ExitCodes.Usage, $"--run-at '{at}' is not a time (use ISO 8601, e.g. 2026-01-31T09:00:00Z).");
                runAt = parsed;
            }
            var handle = await client.EmitWorkflowAsync(p.GetValue(workflowArg)!, input, new EmitOptions { IdempotencyKey = p.GetValue(keyOpt), RunAt = runAt }, ct);
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
                io.Line($"{handle.RunId} succeeded: {result.GetRawText()}");
                return ExitCodes.Ok;
            }
            catch (Exception ex) when (ex is RunFailedException or CanceledException or RedflowTimeoutException)
            {
                spinner?.Dispose();
                if (p.GetValue(json)) io.Json(new { run_id = handle.RunId, error = ex.Message });
                else io.Error(ex.Message);
                return ExitCodes.RunNotSucceeded;
            }
        }));

        // dev
        var dev = new Command("dev", "Start a private redis-server on a free loopback port and print the URL to use");
        dev.SetAction((p, ct) => Task.FromResult(StartDevRedis(io, p.GetValue(json))));

        root.Subcommands.Add(runs);
        root.Subcommands.Add(workflows);
        root.Subcommands.Add(stats);
        root.Subcommands.Add(emit);
        root.Subcommands.Add(dev);

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) io.Error(e.Message);
            return ExitCodes.Usage;
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

    private static string Time(DateTimeOffset? t) => t?.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "-";

    private static string N(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Count(IReadOnlyDictionary<RunStatus, long> counts, RunStatus status) => N(counts.GetValueOrDefault(status));

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..(max - 1)] + "…";

    /// <summary>Where a command writes: plain lines, tables, JSON and errors.</summary>
    private sealed class Io(TextWriter output, TextWriter error)
    {
        public TextWriter Err => error;

        public void Line(string text) => output.WriteLine(text);

        public void Error(string text) => error.WriteLine($"redflow: {text}");

        public int Fail(int code, string message)
        {
            Error(message);
            return code;
        }

        public int Json<T>(T value)
        {
            output.WriteLine(JsonSerializer.Serialize(value, CliApp.Json));
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
