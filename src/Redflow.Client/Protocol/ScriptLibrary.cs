using System.Collections.Concurrent;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using StackExchange.Redis;

namespace Redflow.Protocol;

/// <summary>A script ready to call: its text (the shared library plus its own body) and its SHA1.</summary>
internal sealed record Script(string Name, string Text, byte[] Sha);

/// <summary>
/// The embedded <c>.lua</c> scripts, each prefixed with the parts of <c>_lib.lua</c> it uses, and calling them by
/// SHA: <c>EVALSHA</c> first; on <c>NOSCRIPT</c> (a new or flushed server) one <c>EVAL</c> loads it again.
/// </summary>
internal static class ScriptLibrary
{
    private static readonly ConcurrentDictionary<string, Script> Cache = new();

    public static Script Emit => Get("emit");
    public static Script Claim => Get("claim");
    public static Script Renew => Get("renew");
    public static Script RecordStep => Get("record_step");
    public static Script Complete => Get("complete");
    public static Script Fail => Get("fail");
    public static Script HandBack => Get("handback");
    public static Script Reap => Get("reap");
    public static Script Register => Get("register");
    public static Script Cancel => Get("cancel");
    public static Script Wait => Get("wait");
    public static Script Suspend => Get("suspend");
    public static Script Signal => Get("signal");
    public static Script SendEvent => Get("send_event");
    public static Script CronTick => Get("cron_tick");
    public static Script ClaimOnFailure => Get("claim_onfailure");
    public static Script Resume => Get("resume");
    public static Script Batch => Get("batch");

    /// <summary>The shared library every script starts with (key layout and helpers).</summary>
    public static string Library { get; } = Read("_lib");

    public static Script Get(string name) => Cache.GetOrAdd(name, static n =>
    {
        var body = Read(n);
        var text = LibraryFor(body) + "\n" + body;
        return new Script(n, text, SHA1.HashData(Encoding.UTF8.GetBytes(text)));
    });

    /// <summary>The names of the embedded scripts (without <c>_lib</c>).</summary>
    internal static IReadOnlyList<string> Names { get; } = Assembly.GetExecutingAssembly().GetManifestResourceNames()
        .Where(n => n.StartsWith("Redflow.Scripts.", StringComparison.Ordinal) && n.EndsWith(".lua", StringComparison.Ordinal))
        .Select(n => n["Redflow.Scripts.".Length..^".lua".Length]).Where(n => n != "_lib").Order(StringComparer.Ordinal).ToList();

    /// <summary>A script's text as embedded (its header comment and its code).</summary>
    internal static string Source(string name) => Read(name);

    /// <summary>A script's code: its text after the header comment (<c>--[[ ... ]]</c>), so names a header mentions embed nothing.</summary>
    internal static string Code(string body) =>
        body.StartsWith("--[[", StringComparison.Ordinal) && body.IndexOf("]]", StringComparison.Ordinal) is var end and >= 0 ? body[(end + 2)..] : body;

    /// <summary>The library's definitions that a script's code names itself, in the library's order (its header's <c>Uses:</c> line lists them).</summary>
    internal static IReadOnlyList<string> DirectUses(string body)
    {
        var code = Code(body);
        return Definitions.Where(d => Regex.IsMatch(code, $@"\b{d.Name}\b")).Select(d => d.Name).ToList();
    }

    /// <summary>
    /// The library's definitions a script body uses, directly or through other definitions, in the library's
    /// order. Redis runs a script's whole text on every call, so defining all ~40 helpers each time costs
    /// several microseconds of the server's single thread; a script carries only what it calls.
    /// </summary>
    internal static string LibraryFor(string body)
    {
        var needed = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([Code(body)]);
        while (pending.TryPop(out var text))
            foreach (var (definedName, chunk) in Definitions)
                if (!needed.Contains(definedName) && Regex.IsMatch(text, $@"\b{definedName}\b"))
                {
                    needed.Add(definedName);
                    pending.Push(chunk);
                }
        return string.Join("", Definitions.Where(d => needed.Contains(d.Name)).Select(d => d.Text));
    }

    /// <summary>
    /// <c>_lib.lua</c> cut into its top-level definitions: each starts at a column-0 <c>local</c> line (with the
    /// comment lines just above it) and runs to the next one. The file's header comment is left out.
    /// </summary>
    private static readonly List<(string Name, string Text)> Definitions = Split(Library);

    private static List<(string Name, string Text)> Split(string library)
    {
        var result = new List<(string Name, string Text)>();
        var comments = new StringBuilder();
        StringBuilder? current = null;
        string? currentName = null;
        foreach (var line in library.Split('\n'))
        {
            var definition = Regex.Match(line, @"^local (?:function )?([A-Za-z_][A-Za-z0-9_]*)");
            if (definition.Success)
            {
                if (currentName is not null) result.Add((currentName, current!.ToString()));
                currentName = definition.Groups[1].Value;
                current = new StringBuilder().Append(comments);
                comments.Clear();
                current.Append(line).Append('\n');
            }
            else if (line.StartsWith("--", StringComparison.Ordinal) && !line.StartsWith("--[[", StringComparison.Ordinal) && current is not null && currentName is not null)
                comments.Append(line).Append('\n'); // may belong to the next definition
            else if (current is not null)
            {
                current.Append(comments).Append(line).Append('\n');
                comments.Clear();
            }
        }
        if (currentName is not null) result.Add((currentName, current!.ToString() + comments));
        return result;
    }

    public static async Task<RedisResult> EvaluateAsync(this IDatabaseAsync db, Script script, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            return await db.ScriptEvaluateAsync(script.Sha, keys, args).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await db.ScriptEvaluateAsync(script.Text, keys, args).ConfigureAwait(false);
        }
    }

    private static string Read(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"Redflow.Scripts.{name}.lua")
            ?? throw new InvalidOperationException($"Script {name}.lua is not embedded.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
