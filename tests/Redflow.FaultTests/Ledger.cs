namespace Redflow.FaultTests;

/// <summary>One line of a worker's ledger (see tests/Redflow.FaultWorker/Program.cs for the format).</summary>
internal sealed record LedgerLine(long Ms, string Kind, string Run, string Step, int Attempt, int Pid, string Inv, string Extra);

/// <summary>A handler invocation: begun at <see cref="BeginMs"/> (worker clock) holding fencing token <see cref="Token"/> (null: unknown or already stale).</summary>
internal sealed record Invocation(string Inv, string Run, int Attempt, int Pid, long BeginMs, long? Token);

/// <summary>Every ledger file of one harness run, indexed.</summary>
internal sealed class Ledger
{
    public List<LedgerLine> Lines { get; } = [];
    public Dictionary<string, Invocation> Invocations { get; } = new(StringComparer.Ordinal);
    /// <summary>exec id -> its "start" line.</summary>
    public Dictionary<string, LedgerLine> Starts { get; } = new(StringComparer.Ordinal);
    public HashSet<string> Ends { get; } = new(StringComparer.Ordinal);
    public ILookup<(string Run, string Step), LedgerLine> ByStep { get; private set; } = Array.Empty<LedgerLine>().ToLookup(l => (l.Run, l.Step));
    public ILookup<string, LedgerLine> ByRun { get; private set; } = Array.Empty<LedgerLine>().ToLookup(l => l.Run);
    public int Malformed { get; private set; }

    public static Ledger Read(string dir)
    {
        var ledger = new Ledger();
        foreach (var file in Directory.EnumerateFiles(dir, "*.ledger"))
        {
            foreach (var text in File.ReadAllLines(file))
            {
                var p = text.Split(' ');
                if (p.Length != 8 || !long.TryParse(p[0], out var ms) || !int.TryParse(p[4], out var attempt) || !int.TryParse(p[5], out var pid))
                {
                    if (text.Length > 0) ledger.Malformed++; // a line cut by SIGKILL mid-write (never seen: one write(2) per line)
                    continue;
                }
                ledger.Lines.Add(new LedgerLine(ms, p[1], p[2], p[3], attempt, pid, p[6], p[7]));
            }
        }
        foreach (var l in ledger.Lines)
        {
            switch (l.Kind)
            {
                case "begin":
                    ledger.Invocations[l.Inv] = new Invocation(l.Inv, l.Run, l.Attempt, l.Pid, l.Ms, long.TryParse(l.Extra, out var t) ? t : null);
                    break;
                case "start":
                    ledger.Starts[l.Extra] = l;
                    break;
                case "end":
                    ledger.Ends.Add(l.Extra);
                    break;
            }
        }
        ledger.ByStep = ledger.Lines.Where(l => l.Step != "-").ToLookup(l => (l.Run, l.Step));
        ledger.ByRun = ledger.Lines.ToLookup(l => l.Run);
        return ledger;
    }

    public long? TokenOf(string inv) => Invocations.TryGetValue(inv, out var i) ? i.Token : null;
}
