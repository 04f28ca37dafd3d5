using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Redflow.Protocol;

/// <summary>Run ids: <c>run_</c> plus 26 Crockford base-32 characters, 48 bits of milliseconds then 80 random bits (sortable by time, unique).</summary>
internal static class RunIds
{
    private const string Alphabet = "0123456789abcdefghjkmnpqrstvwxyz";

    public static string New()
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() << 16);
        RandomNumberGenerator.Fill(bytes[6..]);
        return Encode(bytes);
    }

    /// <summary>The id of the child a parent's step starts in one attempt: the same inputs give the same id.</summary>
    public static string Child(string parentRunId, string step, int attempt) => Derived(parentRunId, step, attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The id of the run a cron trigger starts for one instant.</summary>
    public static string Cron(string triggerId, long instantMs) => Derived("cron", triggerId, instantMs.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static string Derived(params string[] parts)
    {
        var hash = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join('\0', parts)));
        return Encode(hash.AsSpan(0, 16));
    }

    private static string Encode(ReadOnlySpan<byte> bytes)
    {
        var value = BinaryPrimitives.ReadUInt128BigEndian(bytes);
        Span<char> chars = stackalloc char[30];
        "run_".CopyTo(chars);
        for (var i = 29; i >= 4; i--)
        {
            chars[i] = Alphabet[(int)(value & 31)];
            value >>= 5;
        }
        return new string(chars);
    }
}
