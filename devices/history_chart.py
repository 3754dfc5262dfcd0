"""A machine's history over a range, for its chart: online %, state changes and temperature.

Read from the folded hours (`DeviceStatusHour`, kept for good) only, never from raw records: one
query whatever the range, and points bounded by the resolution (an hour each up to HOURLY_MAX_DAYS,
a day each up to DAILY_MAX_DAYS). The hour in progress is not folded yet, so the chart ends at the
last complete hour. Days are the merchant's local days; an hour or day without a folded record has
no point (not a zero).
"""

from datetime import datetime, timedelta

from django.db.models import Avg, Max, Min, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _

from coffeeshop.exceptions import Invalid
from devices.models import Device, DeviceStatusHour

HOUR, DAY = "hour", "day"
RESOLUTIONS = [HOUR, DAY]
HOURLY_MAX_DAYS = 7
DAILY_MAX_DAYS = 400
DEFAULT_DAYS = 7


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(message, details={"fields": {field: [message]}})


def chart_range(start: datetime | None, end: datetime | None, resolution: str | None, now: datetime):
    """The range and resolution asked for, defaulted and checked: (start, end, resolution)."""
    end = end or now
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise _invalid("from", _("The start must be before the end."))
    span = end - start
    resolution = resolution or (HOUR if span <= timedelta(days=HOURLY_MAX_DAYS) else DAY)
    if resolution not in RESOLUTIONS:
        raise _invalid("resolution", _("Choose hour or day."))
    if resolution == HOUR and span > timedelta(days=HOURLY_MAX_DAYS):
        message = _("Hourly history covers at most %(days)s days.") % {"days": HOURLY_MAX_DAYS}
        raise _invalid("resolution", message)
    if span > timedelta(days=DAILY_MAX_DAYS):
        raise _invalid("from", _("History covers at most %(days)s days.") % {"days": DAILY_MAX_DAYS})
    return start, end, resolution


def _online_pct(online_s, known_s) -> float | None:
    return round(100 * online_s / known_s, 1) if known_s else None


def _rounded(value) -> float | None:
    return None if value is None else round(value, 1)


def device_history(device: Device, start: datetime, end: datetime, resolution: str, zone) -> list[dict]:
    """The points of `device`'s history in [start, end): each its period's start in `zone`."""
    hours = DeviceStatusHour.objects.filter(device=device, hour__gte=start, hour__lt=end)
    if resolution == HOUR:
        rows = hours.order_by("hour").values(
            "hour",
            "online_s",
            "known_s",
            "avg_temperature_c",
            "min_temperature_c",
            "max_temperature_c",
            "offline_events",
            "state_changes",
        )
        return [_point(timezone.localtime(row["hour"], zone), row) for row in rows]
    days = (
        hours.annotate(day=TruncDate("hour", tzinfo=zone))
        .values("day")
        .order_by("day")
        .annotate(
            online_s=Sum("online_s"),
            known_s=Sum("known_s"),
            avg_temperature_c=Avg("avg_temperature_c"),
            min_temperature_c=Min("min_temperature_c"),
            max_temperature_c=Max("max_temperature_c"),
            offline_events=Sum("offline_events"),
            state_changes=Sum("state_changes"),
        )
    )
    return [_point(datetime.combine(row["day"], datetime.min.time(), zone), row) for row in days]


def _point(at: datetime, row: dict) -> dict:
    return {
        "at": at,
        "online_pct": _online_pct(row["online_s"], row["known_s"]),
        "known_s": row["known_s"],
        "avg_temperature_c": _rounded(row["avg_temperature_c"]),
        "min_temperature_c": _rounded(row["min_temperature_c"]),
        "max_temperature_c": _rounded(row["max_temperature_c"]),
        "offline_events": row["offline_events"],
        "state_changes": row["state_changes"],
    }
