namespace Redflow;

/// <summary>Base type of every error Redflow raises.</summary>
public class RedflowException : Exception
{
    /// <summary>Creates the error with a message.</summary>
    public RedflowException(string message) : base(message) { }

    /// <summary>Creates the error with a message and the exception that caused it.</summary>
    public RedflowException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>The run was canceled (by <see cref="IRedflowClient.CancelRunAsync"/>).</summary>
public sealed class CanceledException : RedflowException
{
    /// <summary>Creates the error for a canceled run.</summary>
    public CanceledException(string runId, string? reason)
        : base(reason is null ? $"Run {runId} was canceled." : $"Run {runId} was canceled: {reason}")
    {
        RunId = runId;
        Reason = reason;
    }

    /// <summary>The canceled run.</summary>
    public string RunId { get; }

    /// <summary>The reason given with the cancel request, if any.</summary>
    public string? Reason { get; }
}

/// <summary>A step, a child wait or <c>ResultAsync</c> timed out.</summary>
public sealed class RedflowTimeoutException : RedflowException
{
    /// <summary>Creates the timeout error.</summary>
    public RedflowTimeoutException(string message) : base(message) { }
}

/// <summary>Thrown by a handler (or a step) to fail the run at once, with no further attempts.</summary>
public class NonRetriableException : RedflowException
{
    /// <summary>Creates the error.</summary>
    public NonRetriableException(string message) : base(message) { }

    /// <summary>Creates the error with the exception that caused it.</summary>
    public NonRetriableException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>The input does not fit the workflow's input type; the run fails without retries.</summary>
public sealed class InputValidationException : RedflowException
{
    /// <summary>Creates the error.</summary>
    public InputValidationException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A workflow that no worker has registered.</summary>
public sealed class UnknownWorkflowException : RedflowException
{
    /// <summary>Creates the error naming the unknown workflow and the known ones.</summary>
    public UnknownWorkflowException(string workflow, IReadOnlyList<string> known)
        : base($"Unknown workflow '{workflow}': no worker has registered it. Known workflows: "
               + (known.Count == 0 ? "(none)" : string.Join(", ", known.Order(StringComparer.Ordinal))) + ".")
    {
        Workflow = workflow;
        Known = known;
    }

    /// <summary>The workflow that was asked for.</summary>
    public string Workflow { get; }

    /// <summary>The workflows registered in Redis at the time.</summary>
    public IReadOnlyList<string> Known { get; }
}

/// <summary>The run failed for good; <see cref="Error"/> says why.</summary>
public sealed class RunFailedException : RedflowException
{
    /// <summary>Creates the error for a failed run.</summary>
    public RunFailedException(string runId, RunError error)
        : base($"Run {runId} failed: {error.Type}: {error.Message}")
    {
        RunId = runId;
        Error = error;
    }

    /// <summary>The failed run.</summary>
    public string RunId { get; }

    /// <summary>The error recorded for the run.</summary>
    public RunError Error { get; }
}

/// <summary>
/// Raised inside a handler when the worker lost the run's lease: another worker owns the run now and
/// nothing this attempt does will be recorded.
/// </summary>
public sealed class LeaseLostException : RedflowException
{
    /// <summary>Creates the error.</summary>
    public LeaseLostException(string runId) : base($"The lease on run {runId} was lost; another worker owns it now.") => RunId = runId;

    /// <summary>The run whose lease was lost.</summary>
    public string RunId { get; }
}
