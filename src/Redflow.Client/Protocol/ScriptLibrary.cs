using System.Collections.Concurrent;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Redflow.Protocol;

/// <summary>A script ready to call: its text (the shared library plus its own body) and its SHA1.</summary>
internal sealed record Script(string Name, string Text, byte[] Sha);

/// <summary>
/// The embedded <c>.lua</c> scripts, each prefixed with <c>_lib.lua</c>, and calling them by SHA:
/// <c>EVALSHA</c> first; on <c>NOSCRIPT</c> (a new or flushed server) one <c>EVAL</c> loads it again.
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
    public static Script AwaitChild => Get("await_child");
    public static Script CronTick => Get("cron_tick");
    public static Script ClaimOnFailure => Get("claim_onfailure");

    /// <summary>The shared library every script starts with (key layout and helpers).</summary>
    public static string Library { get; } = Read("_lib");

    public static Script Get(string name) => Cache.GetOrAdd(name, static n =>
    {
        var text = Library + "\n" + Read(n);
        return new Script(n, text, SHA1.HashData(Encoding.UTF8.GetBytes(text)));
    });

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
