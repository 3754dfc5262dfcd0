"""Status history at fleet scale: raw records for a while, hours for good.

20,000 machines heartbeating every 30 s must not mean 58 million rows a day, so raw history is
recorded only on a change and as one sample per online machine every STATUS_SAMPLE_INTERVAL_S
(write_behind.sample_status_history). `rollup_status_hours` (every 5 minutes) folds each complete hour
into one `DeviceStatusHour` per machine: the seconds it was online, of the seconds its state was known,
its temperature and events. It recomputes whole hours and overwrites them, so a run cut short (a
killed worker) is simply done again by the next. `prune_status_history` then deletes raw records
older than STATUS_HISTORY_RAW_DAYS, in batches, and only from hours already folded.

A machine's state holds from one record to the next; at the start of an hour it is that of its last
record before it, looked for as far back as STATUS_STATE_LOOKBACK (an online machine is sampled every
few minutes; one silent for longer was offline, since the offline sweep records that). Time before a
machine's first known state is not counted as known.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from devices.models import DeviceStatusHistory, DeviceStatusHour, StatusEvent

HOUR = timedelta(hours=1)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def state_lookback() -> timedelta:
    return timedelta(seconds=max(3 * settings.STATUS_SAMPLE_INTERVAL_S, 900))


def _folded_until() -> datetime | None:
    folded = DeviceStatusHour.objects.aggregate(last=Max("hour"))["last"]
    return None if folded is None else folded + HOUR


def _next_hour_to_fold() -> datetime | None:
    """The hour after the last one folded, or later: hours in which nothing was recorded (a fleet
    switched off for days) are skipped to the first hour something was."""
    start = _folded_until()
    records = DeviceStatusHistory.objects.all()
    if start is not None:
        records = records.filter(recorded_at__gte=start - state_lookback())
    first = records.aggregate(first=Min("recorded_at"))["first"]
    if first is None:
        return None
    return _floor_hour(first) if start is None else max(start, _floor_hour(first))


def rollup_status_hours(now: datetime | None = None) -> int:
    """Fold the complete hours not folded yet (at most STATUS_FOLD_HOURS_PER_RUN of them, so a backlog
    is caught up over a few runs); returns the hours folded. Each hour is its own transaction."""
    now = now or timezone.now()
    start = _next_hour_to_fold()
    if start is None:
        return 0
    end = min(_floor_hour(now), start + settings.STATUS_FOLD_HOURS_PER_RUN * HOUR)
    hours = 0
    while start < end:
        fold_hour(start)
        start += HOUR
        hours += 1
    return hours


def fold_hour(hour: datetime) -> int:
    """Every machine's record of `hour` (those with a record in it or a state carried into it)."""
    end = hour + HOUR
    records = (
        DeviceStatusHistory.objects.filter(recorded_at__gte=hour - state_lookback(), recorded_at__lt=end)
        .order_by("device_id", "recorded_at", "pk")
        .values_list("device_id", "recorded_at", "is_online", "event", "temperature_c")
    )
    hours, current = [], None
    for device_id, recorded_at, is_online, event, temperature in records.iterator(chunk_size=5000):
        if current is None or current.device_id != device_id:
            if current is not None:
                hours.append(current.close(end))
            current = _HourOfDevice(device_id, hour)
        current.add(recorded_at, is_online, event, temperature)
    if current is not None:
        hours.append(current.close(end))
    rows = [h for h in hours if h is not None]
    with transaction.atomic():
        DeviceStatusHour.objects.bulk_create(
            rows,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["device", "hour"],
            update_fields=[f for f in HOUR_FIELDS],
        )
    return len(rows)


HOUR_FIELDS = [
    "online_s",
    "known_s",
    "samples",
    "avg_temperature_c",
    "min_temperature_c",
    "max_temperature_c",
    "offline_events",
    "state_changes",
]


class _HourOfDevice:
    """One machine's records, in time order, folded into its hour starting at `hour`."""

    def __init__(self, device_id: int, hour: datetime):
        self.device_id, self.hour = device_id, hour
        self.at, self.online = None, None  # since when the current state holds, and what it is
        self.online_s = self.known_s = 0.0
        self.samples = self.offline_events = self.state_changes = 0
        self.temperatures = []

    def _hold_until(self, moment: datetime) -> None:
        if self.online is not None and moment > self.hour:
            held = (moment - max(self.at, self.hour)).total_seconds()
            self.known_s += held
            self.online_s += held if self.online else 0.0

    def add(self, recorded_at, is_online, event, temperature) -> None:
        self._hold_until(recorded_at)
        self.at, self.online = recorded_at, is_online
        if recorded_at < self.hour:
            return  # before the hour: it only says how the hour began
        self.samples += 1
        self.offline_events += event == StatusEvent.OFFLINE
        self.state_changes += event == StatusEvent.STATE_CHANGED
        if temperature is not None:
            self.temperatures.append(temperature)

    def close(self, end: datetime) -> DeviceStatusHour | None:
        self._hold_until(end)
        if not self.samples and not self.known_s:
            return None
        temps = self.temperatures
        return DeviceStatusHour(
            device_id=self.device_id,
            hour=self.hour,
            online_s=round(self.online_s, 3),
            known_s=round(self.known_s, 3),
            samples=self.samples,
            avg_temperature_c=sum(temps) / len(temps) if temps else None,
            min_temperature_c=min(temps) if temps else None,
            max_temperature_c=max(temps) if temps else None,
            offline_events=self.offline_events,
            state_changes=self.state_changes,
        )


def prune_status_history(now: datetime | None = None, *, batch: int | None = None) -> int:
    """Delete raw records older than STATUS_HISTORY_RAW_DAYS that are already folded, a batch per
    transaction (a delete of millions at once would hold locks and bloat the log). Returns how many."""
    now = now or timezone.now()
    batch = batch or settings.STATUS_PRUNE_BATCH
    folded_until = _folded_until()
    if folded_until is None:
        return 0
    cutoff = min(now - timedelta(days=settings.STATUS_HISTORY_RAW_DAYS), folded_until - state_lookback())
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                DeviceStatusHistory.objects.filter(recorded_at__lt=cutoff)
                .order_by()
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return deleted
            deleted += DeviceStatusHistory.objects.filter(pk__in=ids).delete()[0]
