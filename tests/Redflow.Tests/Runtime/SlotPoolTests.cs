using Redflow.Runtime;

namespace Redflow.Tests.Runtime;

/// <summary>The worker's slot pool on its own: capacity never exceeded, passes, drain.</summary>
public sealed class SlotPoolTests
{
    [Fact]
    public void Running_runs_and_reserved_slots_never_exceed_the_capacity_whatever_the_order_of_events()
    {
        var rng = new Random(42);
        for (var trial = 0; trial < 200; trial++)
        {
            var pool = new SlotPool(rng.Next(1, 6));
            var passes = new List<int>(); // slots each pass in flight still holds
            for (var step = 0; step < 500; step++)
            {
                switch (rng.Next(4))
                {
                    case 0:
                        var reserved = pool.StartPass();
                        if (reserved > 0) passes.Add(reserved);
                        break;
                    case 1 when passes.Count > 0: // a queue fills some of a pass's slots
                        var p = rng.Next(passes.Count);
                        var filled = rng.Next(passes[p] + 1);
                        pool.Filled(filled);
                        passes[p] -= filled;
                        break;
                    case 2 when passes.Count > 0: // a pass ends, its unused slots free again
                        var e = rng.Next(passes.Count);
                        pool.EndPass(passes[e]);
                        passes.RemoveAt(e);
                        break;
                    case 3 when pool.InFlight > 0: // a run ends without passing its slot on
                        pool.Release();
                        break;
                }
                Assert.InRange(pool.Free, 0, pool.Capacity);
                Assert.InRange(pool.InFlight + pool.Reserved, 0, pool.Capacity);
                Assert.Equal(passes.Sum(), pool.Reserved);
                Assert.InRange(pool.Passes, 0, 2);
            }
        }
    }

    [Fact]
    public void A_pass_holds_every_free_slot_and_a_second_waits_for_freed_ones()
    {
        var pool = new SlotPool(3);
        Assert.Equal(3, pool.StartPass());
        Assert.Equal(0, pool.StartPass()); // nothing free: remembered
        Assert.True(pool.PassWanted);
        pool.Filled(2);
        pool.EndPass(1);
        Assert.Equal((1, 2, 0), (pool.Free, pool.InFlight, pool.Passes));
        pool.Release();
        Assert.Equal(2, pool.StartPass());
        Assert.False(pool.PassWanted);
        Assert.Equal(0, pool.StartPass()); // a third pass never starts while two... (here: nothing free)
    }

    [Fact]
    public void At_most_two_passes_are_in_flight()
    {
        var pool = new SlotPool(10);
        Assert.Equal(10, pool.StartPass());
        pool.Filled(4); // runs started; their slots freed while the pass goes on
        pool.Release();
        pool.Release();
        Assert.Equal(2, pool.StartPass());
        pool.Release();
        Assert.Equal(0, pool.StartPass()); // two passes in flight already
        Assert.True(pool.PassWanted);
    }

    [Fact]
    public void Drain_waits_for_passes_in_flight_as_well_as_for_runs()
    {
        var pool = new SlotPool(2);
        Assert.True(pool.Drained);
        pool.StartPass();
        Assert.False(pool.Drained); // no run holds a slot, but the claim may still lease some
        pool.Filled(1);
        pool.EndPass(1);
        Assert.False(pool.Drained); // a run holds a slot
        pool.Release();
        Assert.True(pool.Drained);
    }

    [Fact]
    public void Releasing_a_slot_no_run_holds_is_a_bug_and_says_so()
    {
        var pool = new SlotPool(1);
        Assert.Throws<InvalidOperationException>(pool.Release);
        pool.StartPass();
        Assert.Throws<InvalidOperationException>(() => pool.Filled(2));
    }
}
