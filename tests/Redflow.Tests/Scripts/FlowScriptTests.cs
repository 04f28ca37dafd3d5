using Redflow.Protocol;
using Redflow.Tests.Integration;
using StackExchange.Redis;

namespace Redflow.Tests.Scripts;

/// <summary>Flow control in the scripts (G13): key markers and fairness, key slots released on every exit, priority levels.</summary>
public sealed class FlowScriptTests
{
    private readonly RedisStore _store = TestEnv.Store(TestEnv.NewPrefix());
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    private Keys K => _store.Keys;
    private static IDatabase Db => TestEnv.Db;

    private Task RegisterAsync(string workflow = "wf", int? keyCap = 1, RateLimit? rate = null) =>
        _store.RegisterAsync("app", "node-1", """{"app":"app","queues":["q"],"concurrency":1}""",
            [new WorkflowRegistration(workflow, "q", 100_000, 3, TimeSpan.FromDays(7), false, "[]") { MaxConcurrencyPerKey = keyCap, RateLimit = rate }]);

    private async Task<string> EmitAsync(string id, string? key, int priority = 0, string workflow = "wf") =>
        (await _store.EmitAsync(new NewRun(id, workflow, "{}") { Key = key, Priority = priority })).RunId;

    private Task<IReadOnlyList<ClaimedRun>> ClaimAsync(int max, string? request = null) =>
        _store.ClaimAsync("q", max, "node-1", Lease, request ?? Guid.NewGuid().ToString("N"), 3);

    [Fact]
    public async Task G13_a_key_with_10000_ready_runs_delays_a_key_with_one_by_at_most_one_round()
    {
        await RegisterAsync(keyCap: 100_000);
        await Task.WhenAll(Enumerable.Range(0, 10_000).Select(i => EmitAsync($"a{i:D5}", "big")));
        await EmitAsync("b0", "small");
        // One marker per key in the ready list: the small key's run is among the first two claimed.
        var claimed = await ClaimAsync(2);
        Assert.Equal(["big", "small"], claimed.Select(r => r.Id.StartsWith('a') ? "big" : "small").Order());
        Assert.Equal(1, await Db.ListLengthAsync(K.Ready("q", "wf"))); // only the big key's marker is left
        Assert.Equal(9_999, await Db.ListLengthAsync(K.KeyReady("q", 0, "wf", "big")));
    }

    [Fact]
    public async Task G13_a_key_at_its_cap_is_parked_and_comes_back_when_its_slot_is_released()
    {
        await RegisterAsync();
        await EmitAsync("r1", "k");
        await EmitAsync("r2", "k");
        await EmitAsync("o1", "other");
        var first = await ClaimAsync(5);
        Assert.Equal(["o1", "r1"], first.Select(r => r.Id).Order()); // r2 is held back: k is at its cap; "other" is not held back
        Assert.True(await Db.SetContainsAsync(K.KeyParked("wf", "k"), "q\n0"));
        Assert.Equal(0, await Db.ListLengthAsync(K.Ready("q", "wf"))); // the parked key left the ready list
        Assert.Empty(await ClaimAsync(5));

        var r1 = first.Single(r => r.Id == "r1");
        Assert.Equal(WriteOutcome.Ok, (await _store.CompleteAsync(r1.Id, r1.Token, "1")).Outcome);
        Assert.Equal(WriteOutcome.AlreadyDone, (await _store.CompleteAsync(r1.Id, r1.Token, "1")).Outcome); // a repeat releases nothing twice
        Assert.False(await Db.KeyExistsAsync(K.KeyParked("wf", "k")));
        Assert.Equal(1, await Db.ListLengthAsync(K.Ready("q", "wf"))); // the marker is back, once
        Assert.Equal("r2", Assert.Single(await ClaimAsync(5)).Id);
        Assert.Equal(["r2"], (await Db.SetMembersAsync(K.KeyRunning("wf", "k"))).Select(v => (string)v!));
    }

    public enum Exit { Fail, HandBack, Suspend, CancelAck, ReaperTakeover }

    [Theory]
    [InlineData(Exit.Fail)]
    [InlineData(Exit.HandBack)]
    [InlineData(Exit.Suspend)]
    [InlineData(Exit.CancelAck)]
    [InlineData(Exit.ReaperTakeover)]
    public async Task G13_every_exit_releases_the_key_slot(Exit exit)
    {
        await RegisterAsync();
        await EmitAsync("r1", "k");
        await EmitAsync("r2", "k");
        var held = Assert.Single(await ClaimAsync(5));
        var lease = exit == Exit.ReaperTakeover ? TimeSpan.FromMilliseconds(1) : Lease;
        if (exit == Exit.ReaperTakeover)
        {
            // Lease it again briefly: hand it back, then claim it with a lease that expires at once.
            await _store.HandBackAsync(held.Id, held.Token, TimeSpan.Zero);
            held = Assert.Single(await _store.ClaimAsync("q", 1, "node-1", lease, "short", 3));
            Assert.Equal("r1", held.Id);
        }
        switch (exit)
        {
            case Exit.Fail:
                await _store.FailAsync(new AttemptFailure(held.Id, held.Token, new RunError("E", "boom"), 1) { Delay = TimeSpan.FromHours(1), Lease = Lease });
                break;
            case Exit.HandBack:
                await _store.HandBackAsync(held.Id, held.Token, TimeSpan.FromHours(1));
                break;
            case Exit.Suspend:
                var wait = new WaitRequest("w", WaitKind.Signal, "go");
                Assert.Equal(WaitState.Pending, (await _store.WaitAsync(held.Id, held.Token, 1, wait)).State);
                Assert.Equal(SuspendOutcome.Waiting, await _store.SuspendAsync(held.Id, held.Token, [new PendingWait(wait, null)]));
                break;
            case Exit.CancelAck:
                Assert.True(await _store.CancelAsync(held.Id, "stop"));
                Assert.True(await _store.CancelAsync(held.Id, "stop", held.Token));
                break;
            case Exit.ReaperTakeover:
                await Task.Delay(50);
                await _store.ReapAsync(100, 3, TimeSpan.FromMinutes(1));
                break;
        }
        Assert.DoesNotContain((RedisValue)held.Id, await Db.SetMembersAsync(K.KeyRunning("wf", "k")));
        var next = await ClaimAsync(5);
        // The key's slot is free again: its next run runs (after a takeover that is the taken-over run, back at the front).
        Assert.Contains(next, r => r.Id == (exit == Exit.ReaperTakeover ? "r1" : "r2"));
    }

    [Fact]
    public async Task G13_canceling_a_keys_last_queued_run_removes_its_marker_so_a_later_emit_adds_one_again()
    {
        await RegisterAsync();
        await EmitAsync("r1", "k", 4);
        Assert.True(await _store.CancelAsync("r1", "no"));
        Assert.False(await Db.KeyExistsAsync(K.ReadyAt("q", 4, "wf")));
        Assert.False(await Db.KeyExistsAsync(K.RingAt("q", 4)));
        Assert.False(await Db.KeyExistsAsync(K.Levels("q")));
        await EmitAsync("r2", "k", 4);
        Assert.Equal(1, await Db.ListLengthAsync(K.ReadyAt("q", 4, "wf"))); // one marker, not two
        Assert.Equal("r2", Assert.Single(await ClaimAsync(5)).Id);
    }

    [Fact]
    public async Task G13_priorities_are_claimed_highest_first_and_an_emptied_level_leaves_the_queue()
    {
        await RegisterAsync(keyCap: null);
        await RegisterAsync(workflow: "wf2", keyCap: null);
        await EmitAsync("low", null, -1);
        await EmitAsync("zero", null, 0, "wf2");
        await EmitAsync("high", null, 7);
        await EmitAsync("high-keyed", "k", 7, "wf2");
        Assert.Equal(["-1", "7"], (await Db.SortedSetRangeByRankAsync(K.Levels("q"))).Select(v => (string)v!).Order());
        var claimed = new List<string>();
        for (var i = 0; i < 4; i++) claimed.Add(Assert.Single(await ClaimAsync(1)).Id);
        Assert.Equal(["high", "high-keyed"], claimed.Take(2).Order());
        Assert.Equal(["zero", "low"], claimed.Skip(2));
        Assert.False(await Db.KeyExistsAsync(K.Levels("q")));
        Assert.False(await Db.KeyExistsAsync(K.RingAt("q", 7)));
    }

    [Fact]
    public async Task G13_a_key_at_its_rate_limit_is_parked_until_its_window_has_room_and_a_repeated_claim_answers_the_same()
    {
        await RegisterAsync(keyCap: null, rate: new RateLimit(2, TimeSpan.FromMilliseconds(800)));
        for (var i = 0; i < 3; i++) await EmitAsync($"r{i}", "k");
        var first = await ClaimAsync(5, "req-1");
        Assert.Equal(2, first.Count);
        Assert.Equal(first.Select(r => r.Id), (await ClaimAsync(5, "req-1")).Select(r => r.Id)); // a repeat: the same answer, nothing leased twice
        Assert.Equal(2, await Db.SortedSetLengthAsync(K.Rate("wf", "k")));
        Assert.Empty(await ClaimAsync(5));
        Assert.Equal(1, await Db.SortedSetLengthAsync(K.RateWait("q")));
        await Task.Delay(900);
        Assert.Equal("r2", Assert.Single(await ClaimAsync(5)).Id); // the claim put the key back once its window had room
    }
}
