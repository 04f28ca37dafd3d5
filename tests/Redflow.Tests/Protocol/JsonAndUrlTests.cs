using System.Text.Json;
using Redflow.Protocol;

namespace Redflow.Tests.Protocol;

/// <summary>JSON written as UTF-8 as it is, and Redis URLs parsed and redacted at the last '@'.</summary>
public sealed class JsonAndUrlTests
{
    [Theory]
    [InlineData("Jürgen")]
    [InlineData("中文 and emoji 😀👍🏽")]
    [InlineData("<b>&'+`")]
    [InlineData("quote \" backslash \\ slash / u-escape text \\u00FC")]
    [InlineData("control \u0001 \u001f tab \t newline \n del \u007f c1 \u0085 separators \u2028\u2029")]
    public void Serialize_writes_text_as_it_is_and_round_trips(string text)
    {
        var json = RedflowJson.Serialize(new { text });
        Assert.Equal(text, JsonDocument.Parse(json).RootElement.GetProperty("text").GetString()); // valid, same value
        foreach (var r in text.EnumerateRunes().Where(r => r.Value > 0x9f && r.Value is not (0x2028 or 0x2029)))
            Assert.True(json.Contains(r.ToString(), StringComparison.Ordinal), $"U+{r.Value:X4} is not written as itself in {json}");
        foreach (var c in text.Where(c => c < 0x20))
            Assert.False(json.Contains(c), $"U+{(int)c:X4} is not escaped in {json}"); // JSON requires it
    }

    [Fact]
    public void Unescape_keeps_escapes_json_needs_and_lone_surrogates()
    {
        Assert.Equal("""{"a":"ü\u0022\u005C\n"}""", RedflowJson.Unescape("""{"a":"\u00FC\u0022\u005C\n"}"""));
        Assert.Equal("""["\uD800x","\uDC00","😀"]""", RedflowJson.Unescape("""["\uD800x","\uDC00","\uD83D\uDE00"]"""));
        Assert.Equal("""["\\u00FC"]""", RedflowJson.Unescape("""["\\u00FC"]""")); // an escaped backslash, then text
        Assert.Equal("plain", RedflowJson.Unescape("plain"));
        var element = JsonDocument.Parse("""{"name":"J\u00FCrgen","n":[1,2]}""").RootElement;
        Assert.Equal("{\n  \"name\": \"Jürgen\",\n  \"n\": [\n    1,\n    2\n  ]\n}", RedflowJson.Format(element));
        Assert.Equal("""{"name":"Jürgen","n":[1,2]}""", RedflowJson.Format(element, indented: false));
    }

    [Fact]
    public void A_password_with_an_at_sign_is_parsed_and_redacted_at_the_last_at()
    {
        var options = RedisConnection.Parse("redis://user:p@ss%40word@127.0.0.1:6380/2");
        Assert.Equal("user", options.User);
        Assert.Equal("p@ss@word", options.Password);
        Assert.Equal(2, options.DefaultDatabase);
        Assert.Equal("redis://***@127.0.0.1:6380/2", RedisConnection.Redact("redis://user:p@ss%40word@127.0.0.1:6380/2"));
        Assert.Equal("h:1,password=***,ssl=true", RedisConnection.Redact("h:1,password=s3cret,ssl=true"));
        var bad = Assert.Throws<ArgumentException>(() => RedisConnection.Parse("redis://u:p@ss@127.0.0.1/x"));
        Assert.DoesNotContain("p@ss", bad.Message);
        var config = Assert.Throws<ArgumentException>(() => RedisConnection.Parse("h:1,password=s3cret,connectTimeout=zz"));
        Assert.DoesNotContain("s3cret", config.Message);
    }
}
