"""A demo machine's week of connectivity, recorded as the server records a live one (an `offline`
record when it drops, `online` when it is back, samples while online), then folded into
DeviceStatusHour by the same fold the periodic job runs, so the online-rate chart reads recorded hours,
not made-up ones.

The live server samples an online machine every STATUS_SAMPLE_INTERVAL_S; the history keeps one
sample an hour, on the hour, which folds into the same online and known seconds (the fold carries a
state from one record to the next) for a twelfth of the rows: seeding must be quick.
"""

import random
from datetime import datetime, timedelta

from django.db import connection

from coffeeshop.demo.history import insert_rows
from devices.models import DeviceState, DeviceStatusHistory, StatusEvent
from devices.services.history_rollup import fold_hour

# Drop-outs a day per machine (drawn per machine between these), and how long each lasts: a few per
# cent of the week offline, more on some machines than on others.
HOUR = timedelta(hours=1)
OFFLINE_EPISODES_PER_DAY = (0.5, 2.5)
OFFLINE_MINUTES = (5, 45)
BOILER_C = (92.0, 1.2)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _offline_spells(rng: random.Random, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    per_day = rng.uniform(*OFFLINE_EPISODES_PER_DAY)
    spells, moment = [], start
    while True:
        moment += timedelta(days=rng.expovariate(per_day))
        back = moment + timedelta(minutes=rng.uniform(*OFFLINE_MINUTES))
        if back >= end:
            return spells
        spells.append((moment, back))
        moment = back


RECORD_COLUMNS = ("device_id", "recorded_at", "event", "state", "is_online", "temperature_c")


def _record(device_id, at, event, is_online, rng=None) -> tuple:
    temperature = round(rng.gauss(*BOILER_C), 1) if rng else None
    return (
        device_id,
        connection.ops.adapt_datetimefield_value(at),
        event,
        DeviceState.IDLE,
        is_online,
        temperature,
    )


def machine_records(device_id: int, rng: random.Random, start: datetime, end: datetime) -> list:
    """The machine's records of [start, end): online from `start`, with its drop-outs."""
    records = [_record(device_id, start, StatusEvent.ONLINE, True)]
    hour = _floor_hour(start) + HOUR
    for went, came in [*_offline_spells(rng, start, end), (end, end)]:
        while hour < went:
            records.append(_record(device_id, hour, StatusEvent.SAMPLE, True, rng))
            hour += HOUR
        if came < end:
            records.append(_record(device_id, went, StatusEvent.OFFLINE, False))
            records.append(_record(device_id, came, StatusEvent.ONLINE, True))
            hour = max(hour, _floor_hour(came) + HOUR)
    return records


def record_week(devices, *, start: datetime, end: datetime, seed) -> int:
    """Record the machines' connectivity of [start, end); returns the number of records written."""
    records = []
    for device in devices:
        records += machine_records(device.pk, random.Random(f"{seed}:online:{device.serial}"), start, end)
    insert_rows(DeviceStatusHistory, RECORD_COLUMNS, records)
    return len(records)


def fold_hours(start: datetime, end: datetime) -> int:
    """Fold every complete hour of [start, end) (all machines' records of it, as the periodic job
    would); returns the number of hours folded."""
    hour, folded = _floor_hour(start), 0
    while hour + HOUR <= end:
        fold_hour(hour)
        hour, folded = hour + HOUR, folded + 1
    return folded
