using StackExchange.Redis;

namespace Redflow.Protocol;

/// <summary>Turns the URLs users give into StackExchange.Redis configuration (it does not parse <c>redis://</c> itself).</summary>
internal static class RedisConnection
{
    /// <summary>
    /// Parses <c>redis://[user:password@]host[:port][/db]</c>, <c>rediss://</c> (TLS) or a StackExchange.Redis
    /// configuration string (<c>host:port,password=...</c>). Throws <see cref="ArgumentException"/> saying what is wrong.
    /// </summary>
    public static ConfigurationOptions Parse(string url)
    {
        if (string.IsNullOrWhiteSpace(url))
            throw new ArgumentException("The Redis URL is empty: give redis://host:port or a StackExchange.Redis configuration string.", nameof(url));
        ConfigurationOptions options;
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0)
        {
            try { options = ConfigurationOptions.Parse(url); }
            catch (Exception ex) when (ex is ArgumentException or FormatException)
            {
                throw new ArgumentException($"'{Redact(url)}' is neither a redis:// URL nor a valid StackExchange.Redis configuration string: {ex.Message}", nameof(url), ex);
            }
        }
        else
        {
            options = ParseUrl(url, url[..scheme]);
        }
        return Finish(options);
    }

    /// <summary>
    /// The configuration to connect with: a copy of <paramref name="configuration"/> when one is given (the caller's object
    /// is never changed), else <paramref name="url"/> parsed as by <see cref="Parse"/>.
    /// </summary>
    public static ConfigurationOptions Resolve(string url, ConfigurationOptions? configuration) =>
        configuration is null ? Parse(url) : Finish(configuration.Clone());

    private static ConfigurationOptions Finish(ConfigurationOptions options)
    {
        options.AbortOnConnectFail = false; // keep retrying in the background: a worker outlives a Redis restart
        options.ClientName ??= "redflow";
        return options;
    }

    /// <summary>Checks the opt-in replica wait of a client or worker; throws <see cref="ArgumentOutOfRangeException"/> naming the option.</summary>
    public static ReplicaWait? CheckReplicaWait(int replicas, TimeSpan timeout)
    {
        if (replicas < 0)
            throw new ArgumentOutOfRangeException("WaitForReplicas", replicas, "WaitForReplicas must be 0 (off) or a positive number of replicas.");
        if (replicas == 0) return null;
        if (timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException("WaitForReplicasTimeout", timeout, "WaitForReplicasTimeout must be positive (WAIT with 0 would block forever).");
        return new ReplicaWait(replicas, timeout);
    }

    private static ConfigurationOptions ParseUrl(string url, string scheme)
    {
        if (scheme is not ("redis" or "rediss"))
            throw new ArgumentException($"The Redis URL '{Redact(url)}' has scheme '{scheme}://'; use redis:// or rediss:// (TLS).", nameof(url));
        // The user information ends at the last '@' (a password may contain '@'); the rest is parsed as a URI.
        var rest = url[(scheme.Length + 3)..];
        var at = rest.LastIndexOf('@');
        var userInfo = at >= 0 ? rest[..at] : "";
        if (!Uri.TryCreate(scheme + "://" + rest[(at + 1)..], UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host) || uri.UserInfo.Length > 0)
            throw new ArgumentException($"The Redis URL '{Redact(url)}' is malformed: expected redis://[user:password@]host[:port][/db].", nameof(url));
        var options = new ConfigurationOptions { Ssl = scheme == "rediss" };
        options.EndPoints.Add(uri.Host, uri.IsDefaultPort || uri.Port < 0 ? 6379 : uri.Port);
        if (!string.IsNullOrEmpty(userInfo))
        {
            var parts = userInfo.Split(':', 2);
            if (parts.Length == 2)
            {
                if (parts[0].Length > 0) options.User = Uri.UnescapeDataString(parts[0]);
                options.Password = Uri.UnescapeDataString(parts[1]);
            }
            else
            {
                options.Password = Uri.UnescapeDataString(parts[0]);
            }
        }
        var path = uri.AbsolutePath.Trim('/');
        if (path.Length > 0)
        {
            if (!int.TryParse(path, out var db) || db < 0)
                throw new ArgumentException($"The Redis URL '{Redact(url)}' names database '{path}'; it must be a number such as /0.", nameof(url));
            options.DefaultDatabase = db;
        }
        if (!string.IsNullOrEmpty(uri.Query))
            throw new ArgumentException($"The Redis URL '{Redact(url)}' has query parameters, which are not supported; use a StackExchange.Redis configuration string for extra settings.", nameof(url));
        return options;
    }

    /// <summary>
    /// The URL or configuration string with its secrets replaced by <c>***</c>: a URL's user information up to the
    /// last <c>@</c> (a password may contain <c>@</c>), and the value of every <c>password=</c> of a configuration string.
    /// </summary>
    internal static string Redact(string url)
    {
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            var at = url.LastIndexOf('@');
            return at > scheme ? url[..(scheme + 3)] + "***@" + url[(at + 1)..] : url;
        }
        var parts = url.Split(',');
        for (var i = 0; i < parts.Length; i++)
        {
            var eq = parts[i].IndexOf('=');
            if (eq > 0 && parts[i][..eq].Trim().Equals("password", StringComparison.OrdinalIgnoreCase))
                parts[i] = parts[i][..(eq + 1)] + "***";
        }
        return string.Join(',', parts);
    }

    /// <summary>Checks a key prefix: not empty, no braces (they are the hash tag), no control characters.</summary>
    public static string CheckPrefix(string prefix)
    {
        if (string.IsNullOrEmpty(prefix) || prefix.Length > 64 || prefix.Any(c => c is '{' or '}' || char.IsControl(c)))
            throw new ArgumentOutOfRangeException(nameof(prefix), prefix,
                "Prefix must be 1 to 64 characters with no '{', '}' or control characters.");
        return prefix;
    }
}
