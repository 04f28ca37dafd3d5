namespace Redflow.Cli;

/// <summary>What the redflow command exits with; scripts may rely on these.</summary>
internal static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Ok = 0;

    /// <summary>A run waited on (<c>emit --wait</c>) failed, was canceled or did not finish in time.</summary>
    public const int RunNotSucceeded = 1;

    /// <summary>Bad arguments: an unknown command or option, a malformed URL, JSON or time.</summary>
    public const int Usage = 2;

    /// <summary>The run or workflow does not exist.</summary>
    public const int NotFound = 3;

    /// <summary>Redis could not be reached.</summary>
    public const int RedisUnavailable = 4;
}
