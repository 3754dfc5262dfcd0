"""The server's judgement of "online": a heartbeat within the machine's offline timeout."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from coffeeshop.live import broadcast_after_commit
from coffeeshop.redis import get_redis, key
from devices.live import device_payload
from devices.models import Device, DeviceStatusHistory, StatusEvent
from devices.services.write_behind import flush_heartbeats


def mark_silent_devices_offline(now: datetime | None = None, *, on_bins=None) -> list[int]:
    """Mark offline every online machine silent for longer than its timeout; returns their ids.

    Flushes the heartbeat write-behind first (with `on_bins`, see `flush_heartbeats`) so that it judges
    by the latest heartbeats. Safe to run twice or concurrently: each machine is re-checked under its
    row lock.
    """
    now = now or timezone.now()
    flush_heartbeats(now, on_bins=on_bins)
    default_cutoff = now - timedelta(seconds=settings.DEVICE_OFFLINE_TIMEOUT_S)
    # Machines with their own timeout are few: fetch them all and judge each one below.
    candidates = Device.objects.filter(is_online=True).filter(
        Q(offline_timeout_s__isnull=True, last_seen_at__lt=default_cutoff)
        | Q(offline_timeout_s__isnull=False)
        | Q(last_seen_at__isnull=True)
    )
    went_offline = []
    with transaction.atomic():
        for device in candidates.select_for_update(skip_locked=True).order_by("pk"):
            if (
                device.last_seen_at is not None
                and device.last_seen_at >= now - device.effective_offline_timeout
            ):
                continue
            device.is_online = False
            device.status_changed_at = now
            device.save(update_fields=["is_online", "status_changed_at"])
            DeviceStatusHistory.objects.create(
                device=device,
                recorded_at=now,
                event=StatusEvent.OFFLINE,
                state=device.state,
                is_online=False,
                temperature_c=device.temperature_c,
                wifi_rssi_dbm=device.wifi_rssi_dbm,
            )
            broadcast_after_commit(device.merchant_id, "device.status", device_payload(device))
            went_offline.append(device.pk)
        redis = get_redis()
        if redis is not None and went_offline:
            # The next heartbeat must take the full path to bring the machine back online.
            stale = [key("hb", "fp", pk) for pk in went_offline]
            transaction.on_commit(lambda: redis.delete(*stale))
    return went_offline
