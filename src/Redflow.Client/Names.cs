namespace Redflow;

/// <summary>Checks user-supplied names (workflows, queues, steps, idempotency keys) before they reach a key.</summary>
internal static class Names
{
    internal const int MaxLength = 256;

    /// <summary>Throws <see cref="ArgumentException"/> naming <paramref name="what"/> when <paramref name="value"/> is unfit.</summary>
    internal static string Check(string? value, string what, bool allowColon = true)
    {
        if (string.IsNullOrWhiteSpace(value))
            throw new ArgumentException($"The {what} must not be empty.", what);
        if (value.Length > MaxLength)
            throw new ArgumentException($"The {what} '{value[..32]}...' is {value.Length} characters long; at most {MaxLength} are allowed.", what);
        foreach (var c in value)
        {
            if (char.IsControl(c))
                throw new ArgumentException($"The {what} '{Printable(value)}' contains a control character (U+{(int)c:X4}).", what);
            if (c is '{' or '}')
                throw new ArgumentException($"The {what} '{value}' contains '{c}', which Redflow keeps for its key hash tag.", what);
            if (!allowColon && c == ':')
                throw new ArgumentException($"The {what} '{value}' contains ':', which is not allowed in a {what}.", what);
        }
        return value;
    }

    private static string Printable(string value) => new(value.Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
