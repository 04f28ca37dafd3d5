using Akka.Actor;
using Akka.TestKit.Xunit2;

namespace Redflow.Tests.Actors;

/// <summary>An application actor that starts a workflow when a user signs up (what users write).</summary>
public sealed class SignupHandler : ReceiveActor
{
    public sealed record UserSignedUp(string UserId);
    public sealed record WelcomeStarted(string UserId, string RunId);

    public SignupHandler(IActorRef redflowClient)
    {
        Receive<UserSignedUp>(m =>
        {
            var replyTo = Sender;
            redflowClient.Ask<WorkflowEmitted>(new EmitWorkflow("send-welcome-email", new { user_id = m.UserId },
                    new EmitOptions { IdempotencyKey = $"welcome:{m.UserId}" }), TimeSpan.FromSeconds(10))
                .PipeTo(replyTo, success: e => new WelcomeStarted(m.UserId, e.RunId));
        });
    }
}

/// <summary>
/// How an application tests its own actors that emit workflows: a TestProbe stands in for the client actor, so the
/// spec needs no Redis; it checks the EmitWorkflow message and answers it.
/// </summary>
public sealed class EmittingActorSpecs : TestKit
{
    [Fact]
    public void An_actor_emits_a_workflow_through_the_client_actor()
    {
        var client = CreateTestProbe();
        var handler = Sys.ActorOf(Props.Create(() => new SignupHandler(client.Ref)));

        handler.Tell(new SignupHandler.UserSignedUp("user_1"), TestActor);

        var emit = client.ExpectMsg<EmitWorkflow>();
        Assert.Equal("send-welcome-email", emit.Workflow);
        Assert.Equal("welcome:user_1", emit.Options!.IdempotencyKey);
        client.Reply(new WorkflowEmitted("run_1"));
        ExpectMsg(new SignupHandler.WelcomeStarted("user_1", "run_1"));
    }

    [Fact]
    public void A_failed_emit_reaches_the_sender_as_a_failure()
    {
        var client = CreateTestProbe();
        var handler = Sys.ActorOf(Props.Create(() => new SignupHandler(client.Ref)));
        handler.Tell(new SignupHandler.UserSignedUp("user_2"), TestActor);
        client.ExpectMsg<EmitWorkflow>();
        client.Reply(new Status.Failure(new UnknownWorkflowException("send-welcome-email", [])));
        var failure = ExpectMsg<Status.Failure>();
        Assert.IsType<UnknownWorkflowException>(failure.Cause);
    }
}
