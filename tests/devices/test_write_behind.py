"""The heartbeat write-behind: nothing acknowledged is gone from Redis before PostgreSQL has it, and a
snapshot Redis kept never replaces newer readings in the database."""

import os
import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from coffeeshop.redis import get_redis, key
from devices.models import Device, DeviceBin
from devices.services import (
    BinReading,
    DeviceIdentity,
    StatusReading,
    flush_heartbeats,
    record_heartbeat,
    write_behind,
)
from devices.services.heartbeat import _encode_bins

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not os.environ.get("REDIS_URL", "").strip(), reason="the write-behind needs Redis"),
]


def identity(device):
    return DeviceIdentity(device.pk, device.merchant_id)


def bean(remaining):
    return (BinReading(index=1, material_code="BEAN-ARABICA", remaining=remaining, capacity=1000),)


def quiet_bins(device, remaining, at):
    """Bin levels as a quiet heartbeat's script leaves them in Redis (record_quiet_heartbeat)."""
    redis = get_redis()
    redis.hset(key("hb", "r", device.pk), "bins", _encode_bins(bean(remaining), at))
    redis.sadd(key("hb", "dirty"), device.pk)


def stored(device):
    device.refresh_from_db()
    return device.temperature_c, DeviceBin.objects.get(device=device, index=1).remaining


@pytest.fixture
def written_behind(registered):
    """A machine whose last heartbeat (93.5 °C, 700 g of beans) is in Redis only."""
    device, t0 = registered.device, timezone.now()
    record_heartbeat(
        identity(device), StatusReading(state="idle", temperature_c=90.0, bins=bean(900)), now=t0
    )
    t1 = t0 + timedelta(seconds=30)
    record_heartbeat(identity(device), StatusReading(state="idle", temperature_c=93.5), now=t1)
    quiet_bins(device, 700, t1)
    assert stored(device) == (90.0, 900)
    return device


def test_a_flush_whose_database_write_fails_leaves_everything_for_the_next_flush(written_behind, monkeypatch):
    real = write_behind._update_from_values

    def database_down(*args, **kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(write_behind, "_update_from_values", database_down)
    with pytest.raises(OperationalError):
        flush_heartbeats()
    assert stored(written_behind) == (90.0, 900)

    monkeypatch.setattr(write_behind, "_update_from_values", real)
    assert flush_heartbeats() == 1
    assert stored(written_behind) == (93.5, 700)


def test_a_dirty_set_left_by_a_killed_flush_is_taken_back_by_a_later_one(written_behind):
    redis = get_redis()
    left = key("hb", "flushing", "killed-midway")
    redis.rename(key("hb", "dirty"), left)
    redis.zadd(key("hb", "flushing"), {left: time.time() - write_behind.ABANDONED_AFTER_S - 1})

    assert flush_heartbeats() == 1

    assert stored(written_behind) == (93.5, 700)
    assert not redis.exists(left)
    assert redis.zcard(key("hb", "flushing")) == 0


def test_a_flush_still_running_keeps_its_dirty_set(written_behind):
    redis = get_redis()
    running = key("hb", "flushing", "still-running")
    redis.rename(key("hb", "dirty"), running)
    redis.zadd(key("hb", "flushing"), {running: time.time()})

    assert flush_heartbeats() == 0
    assert redis.exists(running)


def test_bins_that_arrive_while_a_flush_writes_are_not_cleared_by_it(written_behind, monkeypatch):
    real = write_behind._write_readings

    def a_heartbeat_arrives_meanwhile(raw_readings, on_bins):
        written = real(raw_readings, on_bins)
        quiet_bins(written_behind, 500, timezone.now() + timedelta(seconds=60))
        return written

    monkeypatch.setattr(write_behind, "_write_readings", a_heartbeat_arrives_meanwhile)
    flush_heartbeats()
    monkeypatch.setattr(write_behind, "_write_readings", real)
    assert stored(written_behind)[1] == 700

    flush_heartbeats()
    assert stored(written_behind)[1] == 500


def test_readings_redis_kept_from_before_newer_ones_in_the_database_are_not_written(written_behind):
    later = timezone.now() + timedelta(minutes=5)
    Device.objects.filter(pk=written_behind.pk).update(last_seen_at=later, temperature_c=96.0)

    flush_heartbeats()

    written_behind.refresh_from_db()
    assert (written_behind.last_seen_at, written_behind.temperature_c) == (later, 96.0)
