using Akka.Actor;
using Akka.TestKit.Xunit2;
using Redflow.Protocol;
using Redflow.Runtime;
using Redflow.Tests.Integration;

namespace Redflow.Tests.Actors;

/// <summary>Slots between the worker and its pollers, against real Redis: a slot passes on, Concurrency holds, queues are served in order.</summary>
public sealed class SlotSpecs : TestKit
{
    [Fact]
    public async Task A_completing_run_passes_its_slot_to_the_run_it_claimed_and_the_slot_is_freed_once()
    {
        var prefix = TestEnv.NewPrefix();
        var quick = Workflows.Define("quick", async ctx => new { ok = true }, new WorkflowOptions { MaxConcurrency = 10 });
        var options = new StartWorkerOptions { Url = TestEnv.Url, Prefix = prefix, Workflows = [quick] };
        await using var redis = new RedisHandle(RedisConnection.Resolve(options.Url, null));
        var mux = await redis.GetAsync();
        var client = new RedisRedflowClient(new RedflowClientOptions { Url = options.Url, Prefix = prefix }, redis, ownsConnection: false);
        var ctx = new WorkerContext(options, new RedisStore(mux, new Keys(prefix)), client, "spec-node",
            new Dictionary<string, WorkflowDefinition> { ["quick"] = quick });
        await Registration.RegisterAsync(ctx);
        var handles = new List<RunHandle>();
        for (var i = 0; i < 3; i++) handles.Add(await client.EmitWorkflowAsync("quick", new { n = i }));

        // The TestActor stands in for the WorkerActor: the poller is its child and reports slots to it.
        var renewer = Sys.ActorOf(Props.Create(() => new LeaseRenewer(ctx)));
        var onFailure = Sys.ActorOf(Props.Create(() => new OnFailureActor(ctx)));
        var poller = ChildActorOf(Props.Create(() => new QueuePollerActor(ctx, "default", renewer, onFailure)));
        poller.Tell(new ClaimRuns(1));
        Assert.Equal(1, ExpectMsg<RunsClaimed>(TimeSpan.FromSeconds(10)).Count);

        // One slot: each completion claims the next run for it, and the slot comes back once, after the last.
        ExpectMsg<SlotFreed>(TimeSpan.FromSeconds(20));
        foreach (var h in handles) await h.ResultAsync(TimeSpan.FromSeconds(20));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Concurrency_is_never_exceeded_and_an_earlier_queue_is_served_first()
    {
        var prefix = TestEnv.NewPrefix();
        var running = new PeakCounter();
        WorkflowDefinition Tracked(string name, string queue) => Workflows.Define(name, ctx => running.CountAsync<object?>(async () =>
        {
            await Task.Delay(10);
            return null;
        }), new WorkflowOptions { Queue = queue, MaxConcurrency = 100 });
        var early = Tracked("early-wf", "early");
        var late = Tracked("late-wf", "late");
        await using var client = RedflowClient.Create(new RedflowClientOptions { Url = TestEnv.Url, Prefix = prefix });
        // Register both workflows with a worker that takes nothing (it serves another queue), then queue the runs.
        var options = new StartWorkerOptions { Url = TestEnv.Url, Prefix = prefix, Workflows = [early, late], BlmoveTimeout = TimeSpan.FromMilliseconds(200) };
        await (await RedflowWorker.StartAsync(options with { Queues = ["elsewhere"] })).StopAsync();
        var handles = new List<RunHandle>();
        for (var i = 0; i < 15; i++) handles.Add(await client.EmitWorkflowAsync("late-wf", new { i }));
        for (var i = 0; i < 15; i++) handles.Add(await client.EmitWorkflowAsync("early-wf", new { i }));

        await using var worker = await RedflowWorker.StartAsync(options with { Queues = ["early", "late"], Concurrency = 2 });
        foreach (var h in handles) await h.ResultAsync(TimeSpan.FromSeconds(30));
        Assert.InRange(running.Peak, 1, 2);
        // Slots were scarce: no late run was leased while an early one was ready (lease times on the Redis clock; an early
        // and a late run leased in one pass start their handlers in either order).
        var runs = await Task.WhenAll(handles.Select(h => client.GetRunAsync(h.RunId)));
        var lastEarly = runs.Where(r => r!.Workflow == "early-wf").Max(r => r!.StartedAt!.Value);
        var firstLate = runs.Where(r => r!.Workflow == "late-wf").Min(r => r!.StartedAt!.Value);
        Assert.True(firstLate >= lastEarly, $"a late run was leased at {firstLate:O}, before the last early one at {lastEarly:O}");
    }
}
