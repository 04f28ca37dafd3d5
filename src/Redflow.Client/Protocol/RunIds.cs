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
