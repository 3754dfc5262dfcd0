"""What a machine reports: heartbeats and bin levels, recorded at the cost the fleet can afford.

Thousands of machines heartbeat every 30 s, and almost every heartbeat says "still fine, a little
warmer" or "a percent less coffee". So the hot path only writes what changed:

- With Redis, such a heartbeat costs one Redis round trip and no database one: the readings (last
  seen, temperature, signal, uptime) and, when they moved a whole percent, the bin levels are
  written behind to Redis. `flush_heartbeats` (a periodic job, every 15 s) writes them to the
  database in bulk, pushes them live and hands the bins to its caller's `on_bins` (the alarms).
- Without Redis, an unchanged heartbeat is one conditional UPDATE; moved bins are written at once.
- What matters to a person at once (the machine came back online, changed state or firmware, its
  temperature left the brewing range, a refill) takes the full path: one locked transaction, a
  history row, a live push, and its alarms.

"Changed" is decided by fingerprints of the report, kept in Redis (or in the device row without Redis).
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from coffeeshop.live import broadcast_after_commit
from coffeeshop.redis import (
    REDIS_OUTAGE_ERRORS,
    HotScript,
    delete_matching,
    get_redis,
    key,
    outage_tolerated,
    redis_failed,
)
from devices.live import bins_payload, device_payload
from devices.models import Device, DeviceBin, DeviceStatusHistory, StatusEvent
from devices.rules import level_pct_of, low_threshold_for, temperature_in_range
from devices.services.credentials import DeviceIdentity, hash_token, request_counter_key, token_cache_key

FINGERPRINT_TTL_S = 3600


@dataclass(frozen=True)
class BinReading:
    index: int
    material_code: str
    remaining: float
    capacity: float
    unit: str = "g"
    refilled: bool = False

    @property
    def level_pct(self) -> float:
        return level_pct_of(self.remaining, self.capacity)


@dataclass(frozen=True)
class StatusReading:
    state: str
    temperature_c: float | None = None
    ip: str | None = None
    wifi_ssid: str | None = None
    wifi_rssi_dbm: int | None = None
    firmware: str | None = None
    uptime_s: int | None = None
    package_version: str | None = None
    sent_at: datetime | None = None
    bins: tuple[BinReading, ...] | None = None


def _digest(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def status_fingerprint(reading: StatusReading) -> str:
    """What makes a heartbeat news. Temperature counts only by whether it is in the brewing range."""
    parts = (
        reading.state,
        reading.firmware,
        reading.ip,
        reading.wifi_ssid,
        reading.package_version,
        temperature_in_range(reading.temperature_c),
    )
    return _digest("|".join("" if p is None else str(p) for p in parts))


def bins_fingerprint(bins) -> str:
    """Levels count in whole percent: a bin draining by a few grams is not news."""
    if any(b.refilled for b in bins):
        return _digest(f"refill:{timezone.now().isoformat()}")
    return _digest(
        "|".join(
            f"{b.index}:{b.material_code}:{b.capacity}:{b.unit}:{round(b.level_pct)}"
            for b in sorted(bins, key=lambda b: b.index)
        )
    )


def _readings(reading: StatusReading, now: datetime) -> dict:
    """The fields that drift on every heartbeat and are written behind."""
    values = {
        "last_seen_at": now,
        "temperature_c": reading.temperature_c,
        "wifi_rssi_dbm": reading.wifi_rssi_dbm,
        "uptime_s": reading.uptime_s,
        "device_time": reading.sent_at,
    }
    return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class ReportOutcome:
    """What a heartbeat that took the full path changed (None for an unchanged heartbeat)."""

    device: Device
    came_online: bool
    bins: list | None


def record_heartbeat(
    identity: DeviceIdentity, reading: StatusReading, now: datetime | None = None
) -> ReportOutcome | None:
    """Record one heartbeat; the machine is online from now on. Returns what changed, if anything."""
    now = now or timezone.now()
    redis = get_redis()
    if redis is None:
        return _record_without_redis(identity, reading, now)
    status_fp = status_fingerprint(reading)
    bins_fp = bins_fingerprint(reading.bins) if reading.bins else None
    fp_key, bins_key = key("hb", "fp", identity.device_id), key("hb", "bins", identity.device_id)
    pipe = redis.pipeline(transaction=False)
    pipe.set(fp_key, status_fp, get=True, ex=FINGERPRINT_TTL_S)
    if bins_fp:
        pipe.set(bins_key, bins_fp, get=True, ex=FINGERPRINT_TTL_S)
    pipe.hset(
        key("hb", "r", identity.device_id),
        mapping={name: _encode(value) for name, value in _readings(reading, now).items()},
    )
    pipe.sadd(key("hb", "dirty"), identity.device_id)
    try:
        results = pipe.execute()
    except REDIS_OUTAGE_ERRORS as error:
        redis_failed(error)
        return _record_without_redis(identity, reading, now)
    status_changed = results[0] != status_fp.encode()
    bins_changed = bins_fp is not None and results[1] != bins_fp.encode()
    if not (status_changed or bins_changed):
        return None
    try:
        if status_changed:
            return apply_report(identity, reading, now, with_bins=bins_changed)
        return _apply_bin_levels_only(identity, reading.bins, now)
    except BaseException:
        with outage_tolerated():
            redis.delete(fp_key, bins_key)  # so the next heartbeat takes the full path again
        raise


# One round trip for a heartbeat whose state is unchanged. Every check comes before any write, so a
# "no" (0) leaves no trace and the full path counts and records the request as if this never ran.
# Otherwise the request is counted and the readings written behind; when the bin levels moved, their
# new fingerprint is taken and the bins are written behind too (field "bins" of the readings). The
# answer is then the machine's merchant id, as the token's cache entry holds it.
_QUIET_HEARTBEAT = """
local who = redis.call('GET', KEYS[1])
local colon = who and string.find(who, ':', 1, true)
if not colon or string.sub(who, 1, colon - 1) ~= ARGV[1] then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return 0 end
if redis.call('GET', KEYS[3]) ~= ARGV[4] then return 0 end
if redis.call('EXISTS', unpack(KEYS, 7)) > 0 then return 0 end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
redis.call('HSET', KEYS[5], unpack(ARGV, 8))
redis.call('SADD', KEYS[6], ARGV[1])
if ARGV[5] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[5] then
  redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[6])
  redis.call('HSET', KEYS[5], 'bins', ARGV[7])
end
return tonumber(string.sub(who, colon + 1))
"""
_QUIET_HEARTBEAT_SCRIPT = HotScript(_QUIET_HEARTBEAT)


def record_quiet_heartbeat(
    token: str,
    device_id: str,
    reading: StatusReading,
    *,
    rate: tuple[int, int],
    busy_keys: tuple[str, ...],
    now: datetime | None = None,
) -> DeviceIdentity | None:
    """Record a heartbeat whose state is unchanged in one Redis round trip, if that is all it is.

    Taken when the token is active and cached for this very machine, the machine is under its request
    `rate` (requests, per seconds), its state matches the last report taken, its temperature is in
    range and none of `busy_keys` (the machine has commands waiting, a package offered) is set. The
    request is then counted and the readings written behind, with the bins when their levels moved:
    `flush_heartbeats` writes them and hands them to the alarms. Returns the machine the token proved
    (its merchant read with the token), or None, having written nothing, when the full path must take it.
    """
    redis = get_redis()
    if redis is None or not temperature_in_range(reading.temperature_c):
        return None
    now = now or timezone.now()
    limit, window_s = rate
    token_hash = hash_token(token)
    readings = []
    for name, value in _readings(reading, now).items():
        readings += (name, _encode(value))
    keys = (
        token_cache_key(token_hash),
        request_counter_key(token_hash, window_s),
        key("hb", "fp", device_id),
        key("hb", "bins", device_id),
        key("hb", "r", device_id),
        key("hb", "dirty"),
        *busy_keys,
    )
    args = (
        device_id,
        limit,
        window_s * 2,
        status_fingerprint(reading),
        bins_fingerprint(reading.bins) if reading.bins else "",
        FINGERPRINT_TTL_S,
        _encode_bins(reading.bins, now) if reading.bins else "",
        *readings,
    )
    try:
        merchant_id = _QUIET_HEARTBEAT_SCRIPT(redis, keys, args)
    except REDIS_OUTAGE_ERRORS as error:
        redis_failed(error)
        return None
    return DeviceIdentity(int(device_id), merchant_id) if merchant_id else None


def _encode_bins(bins, now: datetime) -> str:
    return json.dumps(
        [now.isoformat(), [[b.index, b.material_code, b.unit, b.capacity, b.remaining] for b in bins]]
    )


def decode_bins(raw: str) -> tuple[datetime, list[BinReading]]:
    at, bins = json.loads(raw)
    return datetime.fromisoformat(at), [
        BinReading(i, code, remaining, capacity, unit) for i, code, unit, capacity, remaining in bins
    ]


def _record_without_redis(
    identity: DeviceIdentity, reading: StatusReading, now: datetime
) -> ReportOutcome | None:
    unchanged = Device.objects.filter(
        pk=identity.device_id, is_online=True, report_fingerprint=status_fingerprint(reading)
    )
    if reading.bins:
        unchanged = unchanged.filter(bins_fingerprint=bins_fingerprint(reading.bins))
    if unchanged.update(**_readings(reading, now)) == 0:
        return apply_report(identity, reading, now, with_bins=bool(reading.bins))
    return None


# Every column a report may change: saving only these keeps the changed heartbeat's UPDATE short.
REPORTED_FIELDS = [
    "state",
    "is_online",
    "last_seen_at",
    "status_changed_at",
    "temperature_c",
    "ip_address",
    "wifi_ssid",
    "wifi_rssi_dbm",
    "uptime_s",
    "firmware",
    "package_version",
    "device_time",
    "report_fingerprint",
    "bins_fingerprint",
]


@transaction.atomic
def apply_report(
    identity: DeviceIdentity, reading: StatusReading, now: datetime, *, with_bins: bool
) -> ReportOutcome:
    """The full path: the machine's row under a lock, a history row for what changed, a live push."""
    device = Device.objects.select_for_update().get(pk=identity.device_id)
    was_online, old_state = device.is_online, device.state
    device.state = reading.state
    device.is_online = True
    for name, value in _readings(reading, now).items():
        setattr(device, name, value)
    if device.last_seen_at is None or device.last_seen_at < now:
        device.last_seen_at = now
    for field, value in (
        ("ip_address", reading.ip),
        ("wifi_ssid", reading.wifi_ssid),
        ("firmware", reading.firmware),
        ("package_version", reading.package_version),
    ):
        if value is not None:
            setattr(device, field, value)
    device.report_fingerprint = status_fingerprint(reading)
    event = (
        StatusEvent.ONLINE
        if not was_online
        else StatusEvent.STATE_CHANGED
        if old_state != reading.state
        else None
    )
    if event:
        device.status_changed_at = now
        DeviceStatusHistory.objects.create(
            device=device,
            recorded_at=now,
            device_time=reading.sent_at,
            event=event,
            state=device.state,
            is_online=True,
            temperature_c=device.temperature_c,
            wifi_rssi_dbm=device.wifi_rssi_dbm,
        )
    bins = apply_bin_levels(device, reading.bins, now) if with_bins and reading.bins else None
    if bins is not None:
        device.bins_fingerprint = bins_fingerprint(reading.bins)
    device.save(update_fields=REPORTED_FIELDS)
    broadcast_after_commit(device.merchant_id, "device.status", device_payload(device, bins))
    return ReportOutcome(device=device, came_online=not was_online, bins=bins)


def _apply_bin_levels_only(identity: DeviceIdentity, readings, now: datetime) -> ReportOutcome:
    """The most common news: only bin levels moved. The machine's own row is not news (its readings
    are written behind as for a quiet heartbeat), so it is neither locked nor saved; the bins are.
    This path runs only after a full report was taken with the status fingerprint it matched."""
    device = Device(pk=identity.device_id, merchant_id=identity.merchant_id)
    bins = apply_bin_levels(device, readings, now)
    broadcast_after_commit(device.merchant_id, "device.bins", {"id": device.pk, "bins": bins_payload(bins)})
    return ReportOutcome(device=device, came_online=False, bins=bins)


def apply_bin_levels(device: Device, readings, now: datetime) -> list[DeviceBin]:
    """Write the reported bins (creating the ones the machine never reported before) and return every
    bin of the machine as it now stands."""
    bins = _set_bin_levels(device, readings, now)
    new = bins_not_in(bins, device, readings, now)
    DeviceBin.objects.bulk_create(new)
    return sorted([*bins, *new], key=lambda b: b.index)


def bins_not_in(bins, device: Device, readings, now: datetime) -> list[DeviceBin]:
    """New rows for the readings of bins the machine never reported before (not among `bins`)."""
    known = {b.index for b in bins}
    return [
        DeviceBin(
            device=device,
            index=r.index,
            material_code=r.material_code,
            unit=r.unit,
            capacity=r.capacity,
            remaining=r.remaining,
            level_pct=r.level_pct,
            low_threshold_pct=low_threshold_for(device.merchant_id, r.material_code),
            reported_at=now,
            last_refilled_at=now if r.refilled else None,
        )
        for r in readings
        if r.index not in known
    ]


def _set_bin_levels(device: Device, readings, now: datetime) -> list[DeviceBin]:
    """One `UPDATE ... RETURNING`: the reported bins written, every bin of the machine read back.

    Written out because the ORM has no UPDATE ... RETURNING, and `bulk_update`'s CASE expressions
    cost a changed heartbeat more CPU than everything else on its path. Each CASE ends in
    `ELSE <column>`: bins not reported keep their values, and PostgreSQL takes the column's type.
    Bin indexes are validated integers and written inline, and the timestamps are one parameter
    each: with at most 50 parameters psycopg caches the parsed statement instead of parsing it anew.
    """
    quote = connection.ops.quote_name
    index = quote("index")
    per_bin = {  # column: its value for a reported bin
        "material_code": lambda r: r.material_code,
        "unit": lambda r: r.unit,
        "capacity": lambda r: r.capacity,
        "remaining": lambda r: r.remaining,
        "level_pct": lambda r: r.level_pct,
    }
    sets, params = [], []
    for column, value in per_bin.items():
        field = DeviceBin._meta.get_field(column)
        whens = " ".join(f"WHEN {int(r.index)} THEN %s" for r in readings)
        sets.append(f"{quote(column)} = CASE {index} {whens} ELSE {quote(column)} END")
        params += [field.get_db_prep_save(value(r), connection) for r in readings]
    stamped_now = DeviceBin._meta.get_field("reported_at").get_db_prep_save(now, connection)
    for column, rows in (
        ("reported_at", readings),
        ("last_refilled_at", [r for r in readings if r.refilled]),
    ):
        if rows:
            indexes, quoted = ", ".join(str(int(r.index)) for r in rows), quote(column)
            sets.append(f"{quoted} = CASE WHEN {index} IN ({indexes}) THEN %s ELSE {quoted} END")
            params.append(stamped_now)
    sql = (
        f"UPDATE {quote(DeviceBin._meta.db_table)} SET {', '.join(sets)} WHERE {quote('device_id')} = %s "
        f"RETURNING *"
    )
    return list(DeviceBin.objects.raw(sql, [*params, device.pk]))


@transaction.atomic
def record_bin_report(identity: DeviceIdentity, readings, now: datetime | None = None) -> list[DeviceBin]:
    """A machine's materials report: bin levels, refills flagged by the machine."""
    now = now or timezone.now()
    device = Device.objects.select_for_update().get(pk=identity.device_id)
    bins = apply_bin_levels(device, readings, now)
    device.bins_fingerprint = bins_fingerprint(readings)
    device.save(update_fields=["bins_fingerprint"])
    redis = get_redis()
    if redis is not None:
        transaction.on_commit(lambda: forget_bins_fingerprint(redis, identity.device_id))
    broadcast_after_commit(device.merchant_id, "device.bins", {"id": device.pk, "bins": bins_payload(bins)})
    return bins


def _encode(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def forget_bins_fingerprint(redis, device_id: int) -> None:
    """The machine's next heartbeat with bins takes the full path (its bins were just written)."""
    with outage_tolerated():  # missed: forgotten with every fingerprint when Redis answers again
        redis.delete(key("hb", "bins", device_id))


def forget_fingerprints(redis) -> None:
    """When Redis answers again after an outage (a recovery hook): what it remembers of each machine's
    last report may be older than what was written to PostgreSQL meanwhile, so every machine's next
    heartbeat takes the full path, as after a cold start."""
    delete_matching(redis, key("hb", "fp", "*"))
    delete_matching(redis, key("hb", "bins", "*"))
