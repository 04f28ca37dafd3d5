using StackExchange.Redis;

namespace Redflow.Cli;

/// <summary>Keeps Redis passwords out of what the command writes (terminals, CI logs).</summary>
internal static class Secrets
{
    /// <summary>
    /// The secrets in a Redis URL or configuration string: a URL's password (everything between the user's <c>:</c>
    /// and the last <c>@</c>, raw and unescaped) and every <c>password=</c> value of a configuration string.
    /// </summary>
    public static IEnumerable<string> Of(string? url)
    {
        if (string.IsNullOrEmpty(url)) yield break;
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            var at = url.LastIndexOf('@');
            if (at <= scheme) yield break;
            var info = url[(scheme + 3)..at];
            var colon = info.IndexOf(':');
            var password = colon >= 0 ? info[(colon + 1)..] : info;
            if (password.Length > 0)
            {
                yield return password;
                string unescaped;
                try { unescaped = Uri.UnescapeDataString(password); }
                catch (UriFormatException) { unescaped = password; }
                if (unescaped != password) yield return unescaped;
            }
            yield break;
        }
        foreach (var part in url.Split(','))
        {
            var eq = part.IndexOf('=');
            if (eq > 0 && part[..eq].Trim().Equals("password", StringComparison.OrdinalIgnoreCase) && part[(eq + 1)..].Length > 0)
                yield return part[(eq + 1)..];
        }
    }

    /// <summary>The URL or configuration string with its secrets replaced by <c>***</c>.</summary>
    public static string Redact(string url)
    {
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            var at = url.LastIndexOf('@');
            if (at <= scheme) return url;
            var info = url[(scheme + 3)..at];
            var colon = info.IndexOf(':');
            return url[..(scheme + 3)] + (colon >= 0 ? info[..colon] + ":***" : "***") + url[at..];
        }
        return string.Join(',', url.Split(',').Select(part =>
        {
            var eq = part.IndexOf('=');
            return eq > 0 && part[..eq].Trim().Equals("password", StringComparison.OrdinalIgnoreCase) ? part[..(eq + 1)] + "***" : part;
        }));
    }

    /// <summary>Replaces every secret (longest first) in <paramref name="text"/> with <c>***</c>.</summary>
    public static string Scrub(string text, IReadOnlyCollection<string> secrets)
    {
        foreach (var secret in secrets.Where(s => s.Length > 0).OrderByDescending(s => s.Length))
            text = text.Replace(secret, "***", StringComparison.Ordinal);
        return text;
    }

    /// <summary>A short reason for a Redis failure: "connection refused", "authentication failed", "timed out".</summary>
    public static string Short(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is RedisConnectionException rc)
                return rc.FailureType switch
                {
                    ConnectionFailureType.AuthenticationFailure => "authentication failed",
                    ConnectionFailureType.UnableToConnect or ConnectionFailureType.UnableToResolvePhysicalConnection =>
                        rc.Message.Contains("auth", StringComparison.OrdinalIgnoreCase) || rc.Message.Contains("NOAUTH", StringComparison.Ordinal) || rc.Message.Contains("WRONGPASS", StringComparison.Ordinal)
                            ? "authentication failed" : "connection refused",
                    ConnectionFailureType.SocketFailure or ConnectionFailureType.SocketClosed => "connection lost",
                    _ => "not connected",
                };
            if (e is RedisTimeoutException) return "timed out";
            if (e is RedisServerException rs && (rs.Message.Contains("NOAUTH", StringComparison.Ordinal) || rs.Message.Contains("WRONGPASS", StringComparison.Ordinal)))
                return "authentication failed";
        }
        return "not reachable";
    }
}
