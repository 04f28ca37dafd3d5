using System.Text.Json;
using System.Text.Json.Serialization;

namespace Redflow;

/// <summary>The JSON settings of every input, output and step result Redflow stores.</summary>
public static class RedflowJson
{
    /// <summary>
    /// <c>snake_case_lower</c> property names, required constructor parameters and nullable annotations respected
    /// (a missing or null required value is an error, never a silent null). Dictionary keys are kept as they are.
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
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    /// <summary>The JSON of <c>null</c>.</summary>
    internal const string Null = "null";

    /// <summary>Serializes a value with its runtime type.</summary>
    internal static string Serialize(object? value) =>
        value is null ? Null : JsonSerializer.Serialize(value, value.GetType(), Options);

    /// <summary>Serializes a value with a declared type.</summary>
    internal static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

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
