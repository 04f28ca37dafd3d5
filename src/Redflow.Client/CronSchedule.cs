using Cronos;

namespace Redflow;

/// <summary>A parsed cron trigger: Cronos expression, time zone and the trigger's id.</summary>
internal sealed record CronSchedule(string Id, CronTrigger Trigger, CronExpression Expression, TimeZoneInfo Zone)
{
    /// <summary>Parses a trigger; throws <see cref="ArgumentException"/> naming the workflow and what is wrong.</summary>
    public static CronSchedule Parse(CronTrigger trigger, string workflow)
    {
        ArgumentNullException.ThrowIfNull(trigger);
        var fields = trigger.Expression?.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length ?? 0;
        CronExpression expression;
        try
        {
            expression = CronExpression.Parse(trigger.Expression ?? "", fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard);
        }
        catch (Exception ex) when (ex is CronFormatException or ArgumentException)
        {
            throw new ArgumentException($"Workflow '{workflow}': cron expression '{trigger.Expression}' is invalid: {ex.Message}", nameof(trigger), ex);
        }
        TimeZoneInfo zone;
        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(trigger.Timezone);
        }
        catch (Exception ex) when (ex is TimeZoneNotFoundException or InvalidTimeZoneException or ArgumentException)
        {
            throw new ArgumentException($"Workflow '{workflow}': time zone '{trigger.Timezone}' of cron trigger '{trigger.Expression}' is unknown (use an IANA id such as 'Europe/Berlin').", nameof(trigger), ex);
        }
        var id = trigger.Id ?? $"{workflow}@{trigger.Expression}@{trigger.Timezone}";
        Names.Check(id, "cron trigger id");
        return new CronSchedule(id, trigger, expression, zone);
    }

    /// <summary>The next fire instant strictly after <paramref name="after"/>.</summary>
    public DateTimeOffset? Next(DateTimeOffset after) => Expression.GetNextOccurrence(after, Zone);
}
