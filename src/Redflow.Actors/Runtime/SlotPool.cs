namespace Redflow.Runtime;

/// <summary>
/// A worker's <c>Concurrency</c> slots, owned by its WorkerActor (not thread-safe: one actor uses it). A slot is
/// free, reserved by a claim pass in flight, or held by a running run. A pass reserves every free slot and offers
/// them to the queues in their listed order (an earlier queue is served first); each queue fills some, and what is
/// left when the pass ends is free again. A run that ends frees its slot, unless its completion claimed the next run
/// for the same slot (passed on: the count does not change). So at no moment do running runs plus reserved slots
/// exceed the capacity.
/// </summary>
internal sealed class SlotPool(int capacity, int maxPasses = 2)
{
    private bool _passWanted;

    /// <summary>The worker's <c>Concurrency</c>.</summary>
    public int Capacity { get; } = capacity;

    /// <summary>Slots neither held by a run nor reserved by a pass.</summary>
    public int Free { get; private set; } = capacity;

    /// <summary>Slots reserved by passes in flight.</summary>
    public int Reserved { get; private set; }

    /// <summary>Claim passes in flight (at most <c>maxPasses</c>, so slots freed while a claim is in flight are claimed without waiting for it).</summary>
    public int Passes { get; private set; }

    /// <summary>Slots held by running runs.</summary>
    public int InFlight => Capacity - Free - Reserved;

    /// <summary>A pass was asked for when none could start (no free slot, or too many in flight): start one when a pass ends.</summary>
    public bool PassWanted => _passWanted;

    /// <summary>No run holds a slot and no pass is in flight: a stopping worker may stop.</summary>
    public bool Drained => InFlight == 0 && Passes == 0;

    /// <summary>Starts a pass holding every free slot; returns how many it reserved, or 0 (and remembers that a pass is wanted) when none can start.</summary>
    public int StartPass()
    {
        if (Free <= 0 || Passes >= maxPasses)
        {
            _passWanted = true;
            return 0;
        }
        _passWanted = false;
        Passes++;
        var reserved = Free;
        Free = 0;
        Reserved += reserved;
        return reserved;
    }

    /// <summary>A queue of a pass filled <paramref name="count"/> of its reserved slots with runs.</summary>
    public void Filled(int count)
    {
        if (count < 0 || count > Reserved) throw new InvalidOperationException($"Filled {count} slots with {Reserved} reserved.");
        Reserved -= count;
    }

    /// <summary>A pass ended with <paramref name="unused"/> of its reserved slots unused: they are free again.</summary>
    public void EndPass(int unused)
    {
        if (Passes == 0 || unused < 0 || unused > Reserved) throw new InvalidOperationException($"Ended a pass with {unused} unused of {Reserved} reserved, {Passes} passes.");
        Free += unused;
        Reserved -= unused;
        Passes--;
    }

    /// <summary>A run ended and did not pass its slot on: the slot is free.</summary>
    public void Release()
    {
        if (InFlight <= 0) throw new InvalidOperationException("Released a slot no run holds.");
        Free++;
    }
}
