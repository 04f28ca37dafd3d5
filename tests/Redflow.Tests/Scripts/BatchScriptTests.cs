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
