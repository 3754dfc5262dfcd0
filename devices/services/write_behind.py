"""The write-behind of quiet heartbeats: what Redis holds for the database, written in bulk.

A quiet heartbeat (devices.services.heartbeat) leaves its readings, and moved bin levels, in Redis and
adds its machine to the dirty set; `flush_heartbeats` (every 15 s) writes them to PostgreSQL. Nothing
taken from Redis is gone from it until PostgreSQL has it: the dirty set being flushed is put back when
the write fails, a flush killed midway leaves its set to the next flush (after ABANDONED_AFTER_S), and
a machine's bins are cleared from Redis only once written, and only if no newer ones came meanwhile.
What Redis itself loses is bounded by its persistence (README: the write-behind and Redis restarts).
"""

import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import ResponseError

from coffeeshop.live import broadcast, broadcast_after_commit
from coffeeshop.redis import get_redis, key, outage_tolerated
from devices.live import bins_payload
from devices.models import Device, DeviceBin, DeviceStatusHistory, StatusEvent
from devices.services.heartbeat import BinReading, bins_not_in, decode_bins

# A dirty set taken by a flush that has not finished after this long was left by a killed one.
ABANDONED_AFTER_S = 300

_DECODERS = {
    "last_seen_at": datetime.fromisoformat,
    "device_time": datetime.fromisoformat,
    "temperature_c": float,
    "wifi_rssi_dbm": int,
    "uptime_s": int,
}

# Clear each machine's bins written behind, unless a newer heartbeat replaced them since they were read.
_CLEAR_BINS_WRITTEN = """
for i, name in ipairs(KEYS) do
  if redis.call('HGET', name, 'bins') == ARGV[i] then redis.call('HDEL', name, 'bins') end
end
return 1
"""


def flush_heartbeats(now: datetime | None = None, *, on_bins=None) -> int:
    """Write the Redis write-behind readings (and bin levels) to the database in bulk and push them live.

    `on_bins({device: bins})`, when given, is called inside the transaction that wrote bins, with every
    bin of each machine whose levels were written behind: the periodic job passes the alarms' judge
    (operations.tasks.flush_heartbeats), since devices knows nothing of alarms.

    Safe to run concurrently and twice: the dirty set is taken atomically (RENAME), and neither a
    reading nor a bin level ever replaces a newer one. Returns the number of machines written.
    """
    redis = get_redis()
    if redis is None:
        return 0
    _take_back_abandoned(redis)
    taking = key("hb", "flushing", uuid.uuid4().hex)
    try:
        redis.rename(key("hb", "dirty"), taking)
    except ResponseError:  # no dirty set: nothing heartbeated since the last flush
        return 0
    redis.zadd(key("hb", "flushing"), {taking: time.time()})
    try:
        device_ids = [int(i) for i in redis.smembers(taking)]
        pipe = redis.pipeline(transaction=False)
        for device_id in device_ids:
            pipe.hgetall(key("hb", "r", device_id))
        raw_readings = dict(zip(device_ids, pipe.execute(), strict=True))
        written = _write_readings(raw_readings, on_bins)
    except BaseException:
        with outage_tolerated():  # missed: the next flush takes it back once it is abandoned
            _give_back(redis, taking)
        raise
    bins_read = {device_id: raw[b"bins"] for device_id, raw in raw_readings.items() if b"bins" in raw}
    pipe = redis.pipeline(transaction=True)
    if bins_read:
        names = [key("hb", "r", device_id) for device_id in bins_read]
        pipe.eval(_CLEAR_BINS_WRITTEN, len(names), *names, *bins_read.values())
    pipe.delete(taking)
    pipe.zrem(key("hb", "flushing"), taking)
    pipe.execute()
    return written


def _give_back(redis, taking: str) -> None:
    """Return a taken dirty set, unwritten, to the dirty set for the next flush."""
    pipe = redis.pipeline(transaction=True)
    pipe.sunionstore(key("hb", "dirty"), [key("hb", "dirty"), taking])
    pipe.delete(taking)
    pipe.zrem(key("hb", "flushing"), taking)
    pipe.execute()


def _take_back_abandoned(redis) -> None:
    for taking in redis.zrangebyscore(key("hb", "flushing"), 0, time.time() - ABANDONED_AFTER_S):
        _give_back(redis, taking.decode())


def _write_readings(raw_readings: dict[int, dict], on_bins) -> int:
    """Each machine's readings, unless the database already has these or newer ones (a full-path
    heartbeat, or one written while Redis was out), then the bins written behind."""
    fields = list(_DECODERS)
    devices = list(Device.objects.filter(pk__in=raw_readings).only("pk", "merchant_id", *fields))
    bins_behind, newer = {}, []
    for device in devices:
        readings = {name.decode(): raw.decode() for name, raw in raw_readings[device.pk].items()}
        if "bins" in readings:
            bins_behind[device] = decode_bins(readings.pop("bins"))
        values = {name: _DECODERS[name](raw) for name, raw in readings.items()}
        seen = values.get("last_seen_at")
        if seen is None or (device.last_seen_at is not None and device.last_seen_at >= seen):
            continue
        for name, value in values.items():
            setattr(device, name, value)
        newer.append(device)
    # Checked above and again in SQL: a flush running beside this one may have written newer readings.
    rows = [(d.pk, *(getattr(d, f) for f in fields)) for d in newer]
    _update_from_values(Device, ["id"], fields, rows, only_newer="last_seen_at")

    by_merchant = defaultdict(list)
    for device in newer:
        by_merchant[device.merchant_id].append(
            {
                "id": device.pk,
                "temperature_c": device.temperature_c,
                "wifi_rssi_dbm": device.wifi_rssi_dbm,
                "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
            }
        )
    for merchant_id, readings in by_merchant.items():
        broadcast(merchant_id, "device.readings", {"devices": readings})
    if bins_behind:
        _write_bins_behind(bins_behind, on_bins)
    return len({d.pk for d in newer} | {d.pk for d in bins_behind})


def _write_bins_behind(bins_behind: dict[Device, tuple[datetime, list[BinReading]]], on_bins) -> None:
    """Bin levels written behind by quiet heartbeats: one UPDATE for every machine (a level never
    replaces a newer one), the bins never reported before created, each machine's bins pushed live
    and handed to `on_bins`."""
    columns = ["material_code", "unit", "capacity", "remaining", "level_pct", "reported_at"]
    rows = [
        (device.pk, r.index, r.material_code, r.unit, r.capacity, r.remaining, r.level_pct, at)
        for device, (at, readings) in bins_behind.items()
        for r in readings
    ]
    with transaction.atomic():
        _update_from_values(DeviceBin, ["device", "index"], columns, rows, only_newer="reported_at")
        stored = defaultdict(list)
        for bin_ in DeviceBin.objects.filter(device__in=bins_behind):
            stored[bin_.device_id].append(bin_)
        new = []
        for device, (at, readings) in bins_behind.items():
            new += bins_not_in(stored[device.pk], device, readings, at)
        DeviceBin.objects.bulk_create(new, ignore_conflicts=True)
        for bin_ in new:
            stored[bin_.device_id].append(bin_)
        bins_by_device = {device: sorted(stored[device.pk], key=lambda b: b.index) for device in bins_behind}
        for device, bins in bins_by_device.items():
            broadcast_after_commit(
                device.merchant_id, "device.bins", {"id": device.pk, "bins": bins_payload(bins)}
            )
        if on_bins is not None:
            on_bins(bins_by_device)


def _update_from_values(model, match: list[str], columns: list[str], rows, *, only_newer: str = "") -> None:
    """`UPDATE table SET columns FROM (VALUES rows)` joined on the `match` fields, in chunks: a bulk
    update that PostgreSQL parses and plans in a moment, where `bulk_update`'s CASE per field and row
    cost the flush more CPU than everything else it does. A row is (*match values, *column values).
    `only_newer`: a column a row only replaces when its value is greater (never an older reading).
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields = [model._meta.get_field(name) for name in (*match, *columns)]
    names = [quote(f.column) for f in fields]
    # PostgreSQL types a VALUES column from its literals (NULL alone is text): say each type; SQLite
    # needs no type, and CAST would turn its date-time text into a number.
    cast = connection.vendor == "postgresql"
    row_sql = "(" + ", ".join(f"CAST(%s AS {f.db_type(connection)})" if cast else "%s" for f in fields) + ")"
    sets = ", ".join(f"{name} = v.{name}" for name in names[len(match) :])
    where = " AND ".join(f"{table}.{name} = v.{name}" for name in names[: len(match)])
    if only_newer:
        newer = quote(model._meta.get_field(only_newer).column)
        where += f" AND ({table}.{newer} IS NULL OR {table}.{newer} < v.{newer})"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            params = [
                f.get_db_prep_value(v, connection) for row in chunk for f, v in zip(fields, row, strict=True)
            ]
            cursor.execute(
                f"WITH v ({', '.join(names)}) AS (VALUES {', '.join([row_sql] * len(chunk))}) "
                f"UPDATE {table} SET {sets} FROM v WHERE {where}",
                params,
            )


def sample_status_history(now: datetime | None = None) -> int:
    """Keep the temperature/signal trend: one sample per online machine per STATUS_SAMPLE_INTERVAL_S."""
    now = now or timezone.now()
    due = now - timedelta(seconds=settings.STATUS_SAMPLE_INTERVAL_S)
    devices = list(
        Device.objects.filter(is_online=True)
        .exclude(last_sampled_at__gt=due)
        .only("pk", "state", "temperature_c", "wifi_rssi_dbm", "device_time")
    )
    DeviceStatusHistory.objects.bulk_create(
        [
            DeviceStatusHistory(
                device=d,
                recorded_at=now,
                device_time=d.device_time,
                event=StatusEvent.SAMPLE,
                state=d.state,
                is_online=True,
                temperature_c=d.temperature_c,
                wifi_rssi_dbm=d.wifi_rssi_dbm,
            )
            for d in devices
        ],
        batch_size=500,
    )
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(last_sampled_at=now)
    return len(devices)
