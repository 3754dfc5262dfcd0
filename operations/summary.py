"""A machine's open alarms and unfinished commands in its summary (see devices.summary)."""

from django.db.models import Count, Q

from devices.summary import summary_part
from operations.models import UNFINISHED_COMMAND_STATUSES, Alarm, RemoteCommand, Severity


@summary_part
def device_operations(device, now) -> dict:
    by_severity = Alarm.objects.filter(device=device, is_active=True).aggregate(
        **{severity: Count("pk", filter=Q(severity=severity)) for severity in Severity.values}
    )
    pending = RemoteCommand.objects.filter(device=device, status__in=UNFINISHED_COMMAND_STATUSES).count()
    return {"open_alarms": by_severity, "pending_commands": pending}
