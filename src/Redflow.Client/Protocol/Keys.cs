using StackExchange.Redis;

namespace Redflow.Protocol;

/// <summary>
/// Every Redis key of one namespace. The scripts build the same keys in <c>Scripts/_lib.lua</c>;
/// the script test <c>The_lua_key_layout_matches_the_key_builder</c> checks that the two agree. All keys share the hash tag <c>{prefix}</c>, so they
/// live in one Redis Cluster slot.
/// </summary>
internal sealed class Keys
{
    public Keys(string prefix)
    {
        Prefix = prefix;
        Base = "{" + prefix + "}:";
    }

    /// <summary>The namespace prefix as configured.</summary>
    public string Prefix { get; }

    /// <summary>The namespace base, KEYS[1] of every script.</summary>
    public string Base { get; }

    public RedisKey Run(string id) => Base + "run:" + id;
    public RedisKey Steps(string id) => Base + "steps:" + id;
    public RedisKey Children(string id) => Base + "children:" + id;
    public RedisKey Ready(string queue, string workflow) => Base + "ready:" + queue + ":" + workflow;
    public RedisKey Ring(string queue) => Base + "ring:" + queue;
    public RedisKey Scheduled(string queue) => Base + "scheduled:" + queue;
    public RedisKey Leases(string queue) => Base + "leases:" + queue;
    public RedisKey Running(string workflow) => Base + "running:" + workflow;
    public RedisKey Workflow(string workflow) => Base + "wf:" + workflow;
    public RedisKey WorkflowWorkers(string workflow) => Base + "wfworkers:" + workflow;
    public RedisKey WorkflowStatus(string workflow, RunStatus status) => Base + "wfstatus:" + StatusName(status) + ":" + workflow;
    public RedisKey WorkflowRuns(string workflow) => Base + "wfruns:" + workflow;
    public RedisKey Idempotency(string workflow, string key) => Base + "idem:" + Len(workflow) + ":" + workflow + ":" + key;
    public RedisKey Finished => Base + "finished";
    public RedisKey OnFailure => Base + "onfailure";
    public RedisKey WorkflowsSet => Base + "workflows";
    public RedisKey Queues => Base + "queues";
    public RedisKey Workers => Base + "workers";
    public RedisKey WorkersSeen => Base + "workers:seen";
    public RedisKey Counters => Base + "counters";
    public RedisKey Token => Base + "token";
    public RedisChannel Doorbell => RedisChannel.Literal(Base + "doorbell");
    public RedisChannel Done => RedisChannel.Literal(Base + "done");
    public RedisChannel Cancel => RedisChannel.Literal(Base + "cancel");
    public RedisKey Cancels => Base + "cancels";
    public RedisKey Waits => Base + "waits";
    public RedisKey Attempts(string id) => Base + "attempts:" + id;
    public RedisKey RunWaits(string id) => Base + "waits:" + id;
    public RedisKey Signals(string id) => Base + "signals:" + id;
    public RedisKey Events(string name, string key) => Base + "events:" + Len(name) + ":" + name + ":" + key;
    public RedisKey Event(string eventId) => Base + "event:" + eventId;
    public RedisKey EventWaiters(string name, string key) => Base + "evwaiters:" + Len(name) + ":" + name + ":" + key;
    public RedisKey EventIdempotency(string name, string key) => Base + "evidem:" + Len(name) + ":" + name + ":" + key;
    public RedisKey EventTriggers(string name) => Base + "evtriggers:" + name;
    public RedisKey EventPurge => Base + "eventpurge";
    public RedisKey EventClock => Base + "eventclock";
    public RedisKey CronLast(string triggerId) => Base + "cron:" + triggerId;
    public RedisKey CronPaused(string triggerId) => Base + "cronpaused:" + triggerId;

    // Flow control (the layout is explained in _lib.lua). Priority p is a decimal integer; 0 uses Ready and Ring.
    public RedisKey ReadyAt(string queue, int priority, string workflow) => priority == 0 ? Ready(queue, workflow) : Base + "readyp:" + queue + ":" + P(priority) + ":" + workflow;
    public RedisKey RingAt(string queue, int priority) => priority == 0 ? Ring(queue) : Base + "ringp:" + queue + ":" + P(priority);
    public RedisKey Levels(string queue) => Base + "levels:" + queue;
    public RedisKey KeyReady(string queue, int priority, string workflow, string key) => Base + "kready:" + queue + ":" + P(priority) + ":" + Len(workflow) + ":" + workflow + ":" + key;
    public RedisKey KeyRunning(string workflow, string key) => Base + "krunning:" + Len(workflow) + ":" + workflow + ":" + key;
    public RedisKey KeyParked(string workflow, string key) => Base + "kparked:" + Len(workflow) + ":" + workflow + ":" + key;
    public RedisKey WorkflowParked(string workflow) => Base + "wfparked:" + workflow;
    public RedisKey Rate(string workflow, string key) => Base + "rate:" + Len(workflow) + ":" + workflow + ":" + key;
    public RedisKey RateWait(string queue) => Base + "ratewait:" + queue;
    public RedisKey Debounce(string workflow, string key) => Base + "debounce:" + Len(workflow) + ":" + workflow + ":" + key;
    public RedisKey Folded(string runId) => Base + "folded:" + runId;

    private static string P(int priority) => priority.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A key part's length as Lua's <c>#</c> counts it: UTF-8 bytes.</summary>
    private static int Len(string part) => System.Text.Encoding.UTF8.GetByteCount(part);

    /// <summary>The status as stored: lower case.</summary>
    public static string StatusName(RunStatus status) => status switch
    {
        RunStatus.Scheduled => "scheduled",
        RunStatus.Queued => "queued",
        RunStatus.Running => "running",
        RunStatus.Waiting => "waiting",
        RunStatus.Succeeded => "succeeded",
        RunStatus.Failed => "failed",
        RunStatus.Canceled => "canceled",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, null),
    };

    public static RunStatus ParseStatus(string? value) => value switch
    {
        "scheduled" => RunStatus.Scheduled,
        "queued" => RunStatus.Queued,
        "running" => RunStatus.Running,
        "waiting" => RunStatus.Waiting,
        "succeeded" => RunStatus.Succeeded,
        "failed" => RunStatus.Failed,
        "canceled" => RunStatus.Canceled,
        _ => throw new InvalidOperationException($"Unknown run status '{value}' in Redis."),
    };

    public static bool IsTerminal(RunStatus status) => status is RunStatus.Succeeded or RunStatus.Failed or RunStatus.Canceled;
}
