using Akka.Actor;

namespace Redflow;

/// <summary>Emit a run; answered with <see cref="WorkflowEmitted"/> or <see cref="Status.Failure"/> with the exception.</summary>
/// <param name="Workflow">The workflow name.</param>
/// <param name="Input">The input (serialized to JSON).</param>
/// <param name="Options">Emit options.</param>
public sealed record EmitWorkflow(string Workflow, object? Input, EmitOptions? Options = null);

/// <summary>A run was emitted (it is in Redis).</summary>
/// <param name="RunId">The run id.</param>
public sealed record WorkflowEmitted(string RunId);

/// <summary>Cancel a run; answered with <see cref="RunCancelRecorded"/> or <see cref="Status.Failure"/>.</summary>
/// <param name="RunId">The run id.</param>
/// <param name="Reason">The reason stored with the run.</param>
public sealed record CancelRun(string RunId, string? Reason = null);

/// <summary>The answer to <see cref="CancelRun"/>.</summary>
/// <param name="RunId">The run id.</param>
/// <param name="Recorded">True when the cancel was recorded; false for an unknown or finished run.</param>
public sealed record RunCancelRecorded(string RunId, bool Recorded);

/// <summary>Read a run; answered with <see cref="RunRetrieved"/> or <see cref="Status.Failure"/>.</summary>
/// <param name="RunId">The run id.</param>
public sealed record GetRun(string RunId);

/// <summary>The answer to <see cref="GetRun"/>.</summary>
/// <param name="RunId">The run id.</param>
/// <param name="Run">The run, or null when there is none.</param>
public sealed record RunRetrieved(string RunId, RunRecord? Run);

/// <summary>Send a signal to a run; answered with <see cref="RunSignaled"/> or <see cref="Status.Failure"/>.</summary>
/// <param name="RunId">The run id.</param>
/// <param name="Signal">The signal name.</param>
/// <param name="Payload">The payload (serialized to JSON).</param>
public sealed record SignalRun(string RunId, string Signal, object? Payload);

/// <summary>The answer to <see cref="SignalRun"/>.</summary>
/// <param name="Delivered">True when the signal is buffered with the run; false for an unknown or finished run.</param>
public sealed record RunSignaled(bool Delivered);

/// <summary>Send an event; answered with the <see cref="EventSent"/> or <see cref="Status.Failure"/>.</summary>
/// <param name="Name">The event name.</param>
/// <param name="Payload">The payload (serialized to JSON).</param>
/// <param name="Options">The event's key and idempotency key.</param>
public sealed record SendEvent(string Name, object? Payload, SendEventOptions? Options = null);

/// <summary>
/// The client as an actor, so actor code never needs the async client: each request runs on the client and its
/// answer (or <see cref="Status.Failure"/>) is piped back to the sender. Local to its node; its messages never
/// cross the cluster.
/// </summary>
public sealed class RedflowClientActor : ReceiveActor
{
    /// <summary>Creates the actor over a client.</summary>
    public RedflowClientActor(IRedflowClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        Receive<EmitWorkflow>(m => client.EmitWorkflowAsync(m.Workflow, m.Input, m.Options)
            .PipeTo(Sender, success: h => new WorkflowEmitted(h.RunId)));
        Receive<CancelRun>(m => client.CancelRunAsync(m.RunId, m.Reason)
            .PipeTo(Sender, success: recorded => new RunCancelRecorded(m.RunId, recorded)));
        Receive<GetRun>(m => client.GetRunAsync(m.RunId)
            .PipeTo(Sender, success: run => new RunRetrieved(m.RunId, run)));
        Receive<SignalRun>(m => client.SignalRunAsync(m.RunId, m.Signal, m.Payload)
            .PipeTo(Sender, success: delivered => new RunSignaled(delivered)));
        Receive<SendEvent>(m => client.SendEventAsync(m.Name, m.Payload, m.Options).PipeTo(Sender));
    }
}
