"""Reads worth naming. Every one is scoped to what the user may see."""

from datetime import datetime, timedelta

from django.db.models import Avg, Count, Max, Min, Q
from django.utils import timezone

from devices.models import Device, DeviceState, DeviceStatusHistory, Location, StatusEvent


def devices_for(user):
    return Device.objects.for_user(user).select_related("merchant", "location")


def locations_for(user):
    return Location.objects.for_user(user).select_related("merchant")


def status_history_for(device: Device):
    return DeviceStatusHistory.objects.filter(device=device)


def fleet_counts(user) -> dict:
    """Online/offline/fault counts over the user's machines (one query)."""
    return Device.objects.for_user(user).aggregate(
        total=Count("pk"),
        online=Count("pk", filter=Q(is_online=True)),
        offline=Count("pk", filter=Q(is_online=False)),
        fault=Count("pk", filter=Q(state=DeviceState.FAULT)),
    )


def device_summary(device: Device, now: datetime | None = None, hours: int = 24) -> dict:
    """One machine at a glance: its last day of temperature and connectivity."""
    now = now or timezone.now()
    since = now - timedelta(hours=hours)
    history = DeviceStatusHistory.objects.filter(device=device, recorded_at__gte=since)
    stats = history.aggregate(
        avg_temperature_c=Avg("temperature_c"),
        min_temperature_c=Min("temperature_c"),
        max_temperature_c=Max("temperature_c"),
        offline_events=Count("pk", filter=Q(event=StatusEvent.OFFLINE)),
        state_changes=Count("pk", filter=Q(event=StatusEvent.STATE_CHANGED)),
    )
    return {"since": since, **stats}


def uptime_pct(device: Device, since: datetime, now: datetime) -> float | None:
    """The share of [since, now) the machine was online, from its recorded connectivity: each record's
    state holds until the next one, and the last record before `since` says how the window began.
    None when nothing was recorded for it by `now`."""
    history = DeviceStatusHistory.objects.filter(device=device, recorded_at__lt=now)
    before = history.filter(recorded_at__lt=since).order_by("-recorded_at").values_list("is_online").first()
    records = list(
        history.filter(recorded_at__gte=since).order_by("recorded_at").values_list("recorded_at", "is_online")
    )
    if before is None and not records:
        return None
    online_s, at, online = 0.0, since, before[0] if before else None
    for recorded_at, is_online in records:
        if online:
            online_s += (recorded_at - at).total_seconds()
        at, online = recorded_at, is_online
    if online:
        online_s += (now - at).total_seconds()
    start = since if before else records[0][0]
    window = (now - start).total_seconds()
    return round(100 * online_s / window, 1) if window > 0 else None


def low_bin_indexes(device: Device) -> list[int]:
    return [b.index for b in device.bins.all() if b.is_low]


def changed_device_payloads(user, since: datetime) -> tuple[list[dict], datetime]:
    """Live payloads of the user's machines that changed or reported since `since`, and the next `since`.

    The polling fallback of the staff socket when there is no Redis channel layer.
    """
    from devices.live import device_payload

    now = timezone.now()
    changed = (
        Device.objects.for_user(user)
        .filter(Q(status_changed_at__gte=since) | Q(last_seen_at__gte=since))
        .prefetch_related("bins")
    )
    return [device_payload(d, list(d.bins.all())) for d in changed], now


_MERCHANT_OF_DEVICE_LIMIT = 100_000
_merchant_of_device: dict[int, int] = {}


def merchant_id_of_device(device_id) -> int | None:
    """The merchant owning machine `device_id` (the id as the URL gives it), or None if there is none.

    Memoised per process without expiry: a machine never changes merchant (registration refuses a
    serial of another merchant, and no page or endpoint edits it). Only machines that exist are kept,
    and the memo starts afresh past a hundred thousand of them."""
    try:
        device_id = int(device_id)
    except (TypeError, ValueError):
        return None
    merchant_id = _merchant_of_device.get(device_id)
    if merchant_id is None:
        merchant_id = Device.objects.filter(pk=device_id).values_list("merchant_id", flat=True).first()
        if merchant_id is not None:
            if len(_merchant_of_device) >= _MERCHANT_OF_DEVICE_LIMIT:
                _merchant_of_device.clear()
            _merchant_of_device[device_id] = merchant_id
    return merchant_id


def forget_device_merchants() -> None:
    _merchant_of_device.clear()
