from django.db.models import Count, Q

from accounts.tenancy import merchant_ids_for
from operations.models import (
    Alarm,
    CommandBatch,
    CommandStatus,
    OperationLog,
    RemoteCommand,
    Severity,
    TaskJob,
)


def jobs_for(user):
    return TaskJob.objects.for_user(user).select_related("created_by")


def commands_for(user):
    return RemoteCommand.objects.for_user(user).select_related("device")


def batches_for(user):
    """Batches with a command on a machine the user may see, with per-state counts of those commands only.

    The merchant filter comes before the counts on purpose: Django then counts over the same (filtered)
    join, so a batch spanning merchants shows each user only their own machines' share.
    """
    ids = merchant_ids_for(user)
    batches = CommandBatch.objects.all()
    if ids is not None:
        batches = batches.filter(commands__device__merchant__in=ids)
    counts = {
        f"n_{status}": Count("commands", filter=Q(commands__status=status)) for status in CommandStatus.values
    }
    return batches.annotate(n_total=Count("commands"), **counts).select_related("created_by")


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


def audit_for(user):
    return OperationLog.objects.for_user(user).select_related("actor")
