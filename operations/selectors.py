from django.db.models import Case, Count, F, IntegerField, Q, Value, When

from accounts.tenancy import merchant_ids_for
from operations.models import (
    Alarm,
    CommandBatch,
    CommandStatus,
    RemoteCommand,
    Severity,
    TaskJob,
)


def jobs_for(user):
    return TaskJob.objects.for_user(user).select_related("created_by")


def commands_for(user):
    return RemoteCommand.objects.for_user(user).select_related("device")


def batches_for(user):
    """Batches with a command on a machine the user may see, with per-state counts of those commands only;
    and batches whose job has not created a command yet, for their creator and their merchant's users.

    The merchant filter comes before the counts on purpose: Django then counts over the same (filtered)
    join, so a batch spanning merchants shows each user only their own machines' share. Likewise
    `visible_machines` (how many machines the batch goes to) is only told to those who see all of them.
    """
    ids = merchant_ids_for(user)
    batches = CommandBatch.objects.defer("device_ids")
    if ids is None:
        visible_machines = F("machines")
    else:
        not_started = Q(commands__isnull=True) & (Q(created_by_id=user.pk) | Q(merchant__in=ids))
        batches = batches.filter(Q(commands__device__merchant__in=ids) | not_started)
        visible_machines = Case(
            When(merchant__in=ids, then=F("machines")), default=Value(None), output_field=IntegerField()
        )
    counts = {
        f"n_{status}": Count("commands", filter=Q(commands__status=status)) for status in CommandStatus.values
    }
    return batches.annotate(
        n_total=Count("commands"), visible_machines=visible_machines, **counts
    ).select_related("created_by", "job")


def alarms_for(user):
    return Alarm.objects.for_user(user).select_related("device")


def active_alarm_counts(user) -> dict[str, int]:
    """The admin badge: active alarms by severity, and how many are not yet acknowledged (one query)."""
    return (
        Alarm.objects.for_user(user)
        .filter(is_active=True)
        .aggregate(
            total=Count("pk"),
            critical=Count("pk", filter=Q(severity=Severity.CRITICAL)),
            warning=Count("pk", filter=Q(severity=Severity.WARNING)),
            info=Count("pk", filter=Q(severity=Severity.INFO)),
            unacknowledged=Count("pk", filter=Q(acknowledged_at__isnull=True)),
        )
    )
