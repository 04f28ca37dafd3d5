using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Redflow;

/// <summary>The JSON settings of every input, output and step result Redflow stores.</summary>
public static class RedflowJson
{
    /// <summary>
    /// <c>snake_case_lower</c> property names, required constructor parameters and nullable annotations respected
    /// (a missing or null required value is an error, never a silent null). Dictionary keys are kept as they are.
    /// Text is written as it is (UTF-8, no <c>\uXXXX</c> escapes for non-ASCII or HTML-sensitive characters): JSON
    /// needs no more, and HTML encoding is the job of whatever puts it in a page.
    /// </summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.General)
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            RespectRequiredConstructorParameters = true,
            RespectNullableAnnotations = true,
            NumberHandling = JsonNumberHandling.Strict,
            // Leaves most text as it is; Unescape below also takes back the escapes it still writes (characters
            // outside the Basic Multilingual Plane, such as emoji, and a few others).
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    /// <summary>The JSON of <c>null</c>.</summary>
    internal const string Null = "null";

    /// <summary>Serializes a value with its runtime type.</summary>
    internal static string Serialize(object? value) =>
        value is null ? Null : Unescape(JsonSerializer.Serialize(value, value.GetType(), Options));

    /// <summary>Serializes a value with a declared type.</summary>
    internal static string Serialize<T>(T value) => Unescape(JsonSerializer.Serialize(value, Options));

    /// <summary>Serializes a value with a declared type.</summary>
    internal static string Serialize(object? value, Type declared) => Unescape(JsonSerializer.Serialize(value, declared, Options));

    private static readonly JsonSerializerOptions Indented = new(Options) { WriteIndented = true };

    /// <summary>
    /// JSON for people to read: indented (unless <paramref name="indented"/> is false), text as it is (no
    /// <c>\uXXXX</c> escapes but the ones JSON requires). The result is valid JSON, not HTML-encoded.
    /// </summary>
    /// <param name="value">The JSON to format.</param>
    /// <param name="indented">Indent nested values (the default); false writes one line.</param>
    public static string Format(JsonElement value, bool indented = true) =>
        Unescape(JsonSerializer.Serialize(value, indented ? Indented : Options));

    /// <summary>
    /// Takes back the <c>\uXXXX</c> escapes JSON does not need: a character other than a control character (C0, DEL,
    /// C1), a quote, a backslash, U+2028/U+2029 or a lone surrogate is written as itself; a surrogate pair as the
    /// character it makes. Everything else (structure, other escapes) is copied, so valid JSON stays valid JSON with the
    /// same value. Text with no <c>\u</c> (the usual case) is returned as it is.
    /// </summary>
    internal static string Unescape(string json)
    {
        var first = json.IndexOf("\\u", StringComparison.Ordinal);
        if (first < 0) return json;
        var sb = new StringBuilder(json.Length);
        var i = 0;
        // Backslashes only occur inside strings, each starting an escape: walk from escape to escape.
        for (var at = json.IndexOf('\\'); at >= 0 && at < json.Length - 1; at = json.IndexOf('\\', i))
        {
            sb.Append(json, i, at - i);
            if (json[at + 1] != 'u' || !Hex(json, at + 2, out var unit))
            {
                sb.Append(json, at, 2);
                i = at + 2;
                continue;
            }
            if (char.IsHighSurrogate(unit) && at + 12 <= json.Length && json[at + 6] == '\\' && json[at + 7] == 'u'
                && Hex(json, at + 8, out var low) && char.IsLowSurrogate(low))
            {
                sb.Append(unit).Append(low);
                i = at + 12;
                continue;
            }
            if (unit < 0x20 || unit is >= '\x7f' and <= '\x9f' || unit is '"' or '\\' or '\u2028' or '\u2029' || char.IsSurrogate(unit))
                sb.Append(json, at, 6);
            else
                sb.Append(unit);
            i = at + 6;
        }
        return sb.Append(json, i, json.Length - i).ToString();
    }

    private static bool Hex(string s, int start, out char value)
    {
        value = '\0';
        if (start + 4 > s.Length) return false;
        if (!ushort.TryParse(s.AsSpan(start, 4), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out var v)) return false;
        value = (char)v;
        return true;
    }

    /// <summary>Parses stored JSON into an element that outlives the document.</summary>
    internal static JsonElement Parse(string? json) =>
        JsonDocument.Parse(string.IsNullOrEmpty(json) ? Null : json).RootElement.Clone();

    /// <summary>Reads a value, turning a shape mismatch into <see cref="InputValidationException"/> naming the JSON path.</summary>
    internal static T DeserializeInput<T>(string json, string what)
    {
        try
        {
            var value = JsonSerializer.Deserialize<T>(json, Options);
            if (value is null && default(T) is null && !IsNullable<T>())
                throw new InputValidationException($"{what}: the value is null, but {typeof(T).Name} is required.");
            return value!;
        }
        catch (JsonException ex)
        {
            var path = string.IsNullOrEmpty(ex.Path) ? "$" : ex.Path;
            throw new InputValidationException($"{what} does not fit {typeof(T).Name} at {path}: {ex.Message}", ex);
        }
    }

    private static bool IsNullable<T>() =>
        typeof(T) == typeof(JsonElement?) || Nullable.GetUnderlyingType(typeof(T)) is not null || typeof(T) == typeof(object);
}
