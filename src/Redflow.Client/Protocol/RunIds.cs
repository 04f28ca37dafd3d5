using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Redflow.Protocol;

/// <summary>Run ids: <c>run_</c> plus 26 Crockford base-32 characters, 48 bits of milliseconds then 80 random bits (sortable by time, unique).</summary>
internal static class RunIds
{
    private const string Alphabet = "0123456789abcdefghjkmnpqrstvwxyz";

    private static readonly Lock Gate = new();
    private static UInt128 _last;

    /// <summary>
    /// A new id. Within one process ids strictly increase (an id made in the same millisecond as the previous one
    /// is the previous plus one), so runs emitted in one millisecond list in the order they were emitted.
    /// </summary>
    public static string New() => New("run_");

    /// <summary>A new event id: <c>evt_</c> plus 26 characters, made as run ids are (sortable by time, unique).</summary>
    public static string NewEvent() => New("evt_");

    private static string New(string kind)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() << 16);
        RandomNumberGenerator.Fill(bytes[6..]);
        var value = BinaryPrimitives.ReadUInt128BigEndian(bytes);
        lock (Gate)
        {
            if (value <= _last) value = _last + 1;
            _last = value;
        }
        BinaryPrimitives.WriteUInt128BigEndian(bytes, value);
        return Encode(bytes, kind);
    }

    /// <summary>The id of the child a parent's step starts in one attempt: the same inputs give the same id.</summary>
    public static string Child(string parentRunId, string step, int attempt) => Derived(parentRunId, step, attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The id of the run a cron trigger starts for one instant.</summary>
    public static string Cron(string triggerId, long instantMs) => Derived("cron", triggerId, instantMs.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static string Derived(params string[] parts)
    {
        var hash = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join('\0', parts)));
        return Encode(hash.AsSpan(0, 16), "run_");
    }

    private static string Encode(ReadOnlySpan<byte> bytes, string kind)
    {
        var value = BinaryPrimitives.ReadUInt128BigEndian(bytes);
        Span<char> chars = stackalloc char[30];
        kind.CopyTo(chars);
        for (var i = 29; i >= 4; i--)
        {
            chars[i] = Alphabet[(int)(value & 31)];
            value >>= 5;
        }
        return new string(chars);
    }
}
