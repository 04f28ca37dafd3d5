using Redflow.Protocol;
using Redflow.Tests.Integration;
using StackExchange.Redis;

namespace Redflow.Tests.Scripts;

/// <summary>Group commit: batch.lua runs entries of different runs in one call, each fenced and answered on its own.</summary>
public sealed class BatchScriptTests
{
    private readonly RedisStore _store = TestEnv.Store(TestEnv.NewPrefix());
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);
    private Keys K => _store.Keys;
    private static IDatabase Db => TestEnv.Db;

    private async Task<List<ClaimedRun>> SetUpAsync(int runs)
    {
        await _store.RegisterAsync("app", "node-1", """{"app":"app","queues":["q"],"concurrency":1}""",
            [new WorkflowRegistration("wf", "q", 100, 1, TimeSpan.FromDays(7), false, "[]")]);
        for (var i = 0; i < runs; i++) await _store.EmitAsync(new NewRun($"run_{(char)('a' + i)}", "wf", "{}"));
        return [.. (await _store.ClaimAsync("q", runs, "node-1", Lease, "claim-1", 3)).OrderBy(r => r.Id, StringComparer.Ordinal)];
    }

    private async Task<RedisResult[]> BatchAsync(params (string Kind, RedisValue[] Args)[] entries)
    {
        var args = new List<RedisValue>();
        foreach (var (kind, a) in entries)
        {
            args.Add(kind);
            args.Add(a.Length);
            args.AddRange(a);
        }
        return (RedisResult[])(await Db.EvaluateAsync(ScriptLibrary.Batch, [(RedisKey)K.Base], [.. args]))!;
    }

    private static string Body(string step) => $$"""{"name":"{{step}}","status":"succeeded","attempt":1,"output":7}""";

    [Fact]
    public async Task A_batch_mixing_fresh_stale_repeated_and_unknown_entries_answers_each_on_its_own()
    {
        var runs = await SetUpAsync(4);
        var (a, b, c, d) = (runs[0], runs[1], runs[2], runs[3]);
        var answers = await BatchAsync(
            ("record_step", [a.Id, a.Token, "s1", Body("s1"), 3]),           // fresh
            ("record_step", [a.Id, a.Token, "s1", Body("s1"), 3]),           // repeated in the same batch
            ("complete", [b.Id, "1", "\"stale\"", ""]),                     // a token that no longer holds the run
            ("complete", [c.Id, c.Token, "\"done\"", ""]),                  // fresh
            ("complete", [c.Id, c.Token, "\"done\"", ""]),                  // repeated
            ("fail", [d.Id, d.Token, """{"type":"E","message":"boom"}""", "0", 0, "", "", 0, 30000]), // fresh, not retried
            ("bogus", ["x"]),                                                // an unknown kind
            ("complete", ["run_zz", "1", "null", ""]),                       // an unknown run
            ("suspend", [b.Id, "1"]));                                       // stale
        string Head(int i) => (string)((RedisResult[])answers[i]!)[0]!;
        Assert.Equal(9, answers.Length);
        Assert.Equal(["ok", "exists", "fenced", "ok", "done", "failed", "unknown", "fenced", "fenced"], Enumerable.Range(0, 9).Select(Head));
        Assert.Equal("running", ((string)((RedisResult[])answers[2]!)[1]!));
        Assert.Equal("missing", ((string)((RedisResult[])answers[7]!)[1]!));

        Assert.Equal("succeeded", (string?)await Db.HashGetAsync(K.Run(c.Id), "status"));
        Assert.Equal("\"done\"", (string?)await Db.HashGetAsync(K.Run(c.Id), "output"));
        Assert.Equal("failed", (string?)await Db.HashGetAsync(K.Run(d.Id), "status"));
        Assert.Equal("running", (string?)await Db.HashGetAsync(K.Run(b.Id), "status")); // the stale entries changed nothing
        Assert.Equal(b.Token, (string?)await Db.HashGetAsync(K.Run(b.Id), "token"));
        Assert.True(await Db.HashExistsAsync(K.Steps(a.Id), "s1"));
        Assert.Equal(["run_a", "run_b"], (await Db.SetMembersAsync(K.Running("wf"))).Select(v => (string)v!).Order());

        // The whole batch repeated (its answer lost): every entry answers "already done" or fenced, nothing written twice.
        var again = await BatchAsync(("record_step", [a.Id, a.Token, "s1", Body("s1"), 3]), ("complete", [c.Id, c.Token, "\"done\"", ""]),
            ("fail", [d.Id, d.Token, """{"type":"E","message":"boom"}""", "0", 0, "", "", 0, 30000]));
        Assert.Equal(["exists", "done", "done"], again.Select(x => (string)((RedisResult[])x!)[0]!));
        Assert.Equal(1, (long)(await Db.HashGetAsync(K.Counters, "succeeded")));
        Assert.Equal(1, (long)(await Db.HashGetAsync(K.Counters, "failed")));
    }

    [Fact]
    public async Task A_batch_writes_its_counters_once_and_announces_its_finished_runs_in_one_message()
    {
        var runs = await SetUpAsync(4);
        var messages = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var subscriber = TestEnv.Db.Multiplexer.GetSubscriber();
        await subscriber.SubscribeAsync(K.Done, (_, m) => messages.Enqueue((string)m!));
        try
        {
            var answers = await BatchAsync(
                ("complete", [runs[0].Id, runs[0].Token, "1", ""]),
                ("complete", [runs[1].Id, runs[1].Token, "2", ""]),
                ("complete", [runs[1].Id, runs[1].Token, "2", ""]),                // repeated: neither counted nor announced again
                ("fail", [runs[2].Id, runs[2].Token, """{"type":"E","message":"boom"}""", "0", 0, "", "", 0, 30000]),
                ("record_step", [runs[3].Id, runs[3].Token, "s1", Body("s1"), 3])); // not finished: not announced
            Assert.Equal(["ok", "ok", "done", "failed", "ok"], answers.Select(x => (string)((RedisResult[])x!)[0]!));
            Assert.Equal(2, (long)await Db.HashGetAsync(K.Counters, "succeeded"));
            Assert.Equal(1, (long)await Db.HashGetAsync(K.Counters, "failed"));
            Assert.Equal(4, (long)await Db.HashGetAsync(K.Counters, "started")); // counted one by one by the claim (a script of its own)
            for (var deadline = DateTime.UtcNow.AddSeconds(30); messages.IsEmpty && DateTime.UtcNow < deadline;) await Task.Delay(20);
            await Task.Delay(200); // a second message would have come by now
            Assert.Equal([$"{runs[0].Id}\n{runs[1].Id}\n{runs[2].Id}"], messages);

            // Every step of the batch saw one clock: the step record's times are the completions' finish time.
            var finished = (long)await Db.HashGetAsync(K.Run(runs[0].Id), "finished_at");
            Assert.Equal(finished, (long)await Db.HashGetAsync(K.Run(runs[2].Id), "finished_at"));
            Assert.Contains($"\"finished_at\":{finished},", (string?)await Db.HashGetAsync(K.Steps(runs[3].Id), "s1"));
        }
        finally
        {
            await subscriber.UnsubscribeAsync(K.Done);
        }
    }

    [Fact]
    public async Task ResultAsync_wakes_on_a_done_message_that_lists_several_runs()
    {
        var prefix = TestEnv.NewPrefix();
        var store = TestEnv.Store(prefix);
        await store.RegisterAsync("app", "node-1", """{"app":"app","queues":["q"],"concurrency":1}""",
            [new WorkflowRegistration("wf", "q", 100, 1, TimeSpan.FromDays(7), false, "[]")]);
        await using var client = RedflowClient.Create(new RedflowClientOptions { Url = TestEnv.Url, Prefix = prefix });
        var handles = new List<RunHandle>();
        for (var i = 0; i < 3; i++) handles.Add(await client.EmitWorkflowAsync("wf", null));
        var claimed = await store.ClaimAsync("q", 3, "node-1", Lease, "claim-1", 3);
        var results = handles.Select(h => h.ResultAsync(TimeSpan.FromSeconds(30))).ToList();
        await Task.Delay(300); // the waiters are registered (a missed message would leave them to the 2 s fallback poll)
        var started = System.Diagnostics.Stopwatch.StartNew();
        var args = new List<RedisValue>();
        foreach (var r in claimed) args.AddRange(["complete", 4, r.Id, r.Token, "7", ""]);
        await Db.EvaluateAsync(ScriptLibrary.Batch, [(RedisKey)store.Keys.Base], [.. args]);
        Assert.All(await Task.WhenAll(results), r => Assert.Equal(7, r.GetInt32()));
        Assert.True(started.Elapsed < RedisRedflowClient.FallbackPoll, $"woken after {started.Elapsed}, not by the message");
    }

    [Fact]
    public async Task Transitions_that_come_while_a_call_is_in_flight_go_together_and_each_gets_its_own_answer()
    {
        var runs = await SetUpAsync(20);
        var before = _store.Group.Sent;
        var outcomes = await Task.WhenAll(runs.Select(r => _store.CompleteAsync(r.Id, r.Token, "1")));
        var after = _store.Group.Sent;
        Assert.All(outcomes, o => Assert.Equal(WriteOutcome.Ok, o.Outcome));
        Assert.Equal(20, after.Entries - before.Entries);
        Assert.True(after.Calls - before.Calls < 20, $"{after.Calls - before.Calls} calls for 20 completions"); // the first goes alone, the rest gathered
        var stale = await Task.WhenAll(runs.Take(3).Select(r => _store.CompleteAsync(r.Id, "1", "1")).Append(_store.CompleteAsync(runs[5].Id, runs[5].Token, "1")));
        Assert.Equal([WriteOutcome.Fenced, WriteOutcome.Fenced, WriteOutcome.Fenced, WriteOutcome.AlreadyDone], stale.Select(s => s.Outcome));
    }
}
