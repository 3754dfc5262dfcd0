"""POST /api/v1/devices/{device_id}/status: what a heartbeat records, what it replies and what it costs."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Device, DeviceBin, DeviceStatusHistory, StatusEvent
from devices.services import (
    DeviceIdentity,
    StatusReading,
    flush_heartbeats,
    record_heartbeat,
    sample_status_history,
)
from tests.factories import DeviceBinFactory, DeviceFactory

pytestmark = pytest.mark.django_db

REDIS_CONFIGURED = bool(os.environ.get("REDIS_URL", "").strip())
WRITE_BEHIND_NEEDS_REDIS = "the heartbeat write-behind needs Redis (REDIS_URL)"
needs_redis = pytest.mark.skipif(reason=WRITE_BEHIND_NEEDS_REDIS, condition=not REDIS_CONFIGURED)

FULL_HEARTBEAT = {
    "state": "idle",
    "temperature_c": 92.4,
    "ip": "10.0.3.17",
    "wifi": {"ssid": "shop-5g", "rssi_dbm": -61},
    "firmware": "1.4.3",
    "uptime_s": 86400,
    "package_version": "2026.11.3",
    "sent_at": "2026-11-24T08:15:00Z",
    "bins": [{"index": 1, "material": "BEAN-ARABICA", "remaining": 820, "capacity": 1000, "unit": "g"}],
}


def beat(client, body=None, device_id=None, **fields):
    body = {**(body or {"state": "idle"}), **fields}
    return client.post(f"/api/v1/devices/{device_id or client.device.pk}/status", body, format="json")


def history_of(device):
    return list(
        DeviceStatusHistory.objects.filter(device=device)
        .order_by("recorded_at", "pk")
        .values_list("event", "state")
    )


def identity(device):
    return DeviceIdentity(device.pk, device.merchant_id)


# --- What a heartbeat records -------------------------------------------------------------------


def test_a_heartbeat_records_state_readings_network_firmware_package_and_last_seen(machine):
    before = timezone.now()

    assert beat(machine, FULL_HEARTBEAT).status_code == 200

    device = Device.objects.get(pk=machine.device.pk)
    assert device.state == "idle"
    assert device.is_online is True
    assert device.temperature_c == 92.4
    assert device.ip_address == "10.0.3.17"
    assert (device.wifi_ssid, device.wifi_rssi_dbm) == ("shop-5g", -61)
    assert device.firmware == "1.4.3"
    assert device.package_version == "2026.11.3"
    assert device.uptime_s == 86400
    assert device.device_time.isoformat() == "2026-11-24T08:15:00+00:00"
    assert before <= device.last_seen_at <= timezone.now()


def test_the_reply_carries_server_time_interval_no_commands_and_no_desired_package(machine, settings):
    reply = beat(machine, FULL_HEARTBEAT)

    body = reply.json()
    assert body["ok"] is True
    assert set(body["data"]) == {"server_time", "heartbeat_interval_s", "commands", "desired_package"}
    assert body["data"]["heartbeat_interval_s"] == settings.HEARTBEAT_INTERVAL_S
    assert body["data"]["commands"] == []
    assert body["data"]["desired_package"] is None
    assert body["data"]["server_time"].endswith("Z")


def test_a_heartbeat_with_only_the_state_is_accepted(machine):
    assert beat(machine, {"state": "brewing"}).status_code == 200

    device = Device.objects.get(pk=machine.device.pk)
    assert device.state == "brewing"
    assert device.temperature_c is None
    assert not device.bins.exists()


def test_fields_the_server_does_not_know_are_ignored(machine):
    assert beat(machine, {"state": "idle", "brand_new_field": {"x": 1}}).status_code == 200


def test_a_token_of_device_a_on_device_bs_path_is_403_and_b_is_unchanged(machine, merchant, expect_api_error):
    other = DeviceFactory(merchant=merchant, state="idle", is_online=False, last_seen_at=None)
    before = Device.objects.filter(pk=other.pk).values().get()

    expect_api_error(
        beat(machine, {**FULL_HEARTBEAT, "state": "fault"}, device_id=other.pk), 403, "FORBIDDEN"
    )

    assert Device.objects.filter(pk=other.pk).values().get() == before
    assert not DeviceStatusHistory.objects.filter(device=other).exists()
    assert not DeviceBin.objects.filter(device=other).exists()
    machine.device.refresh_from_db()
    assert machine.device.last_seen_at is None


@pytest.mark.parametrize("state", ["sleeping", "unknown", "online", "offline", "IDLE", ""])
def test_a_state_outside_the_protocols_five_is_400_naming_state(machine, state, expect_api_error):
    error = expect_api_error(beat(machine, {**FULL_HEARTBEAT, "state": state}), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["state"]
    assert Device.objects.get(pk=machine.device.pk).last_seen_at is None


def test_a_heartbeat_without_a_state_is_400_naming_state(machine, expect_api_error):
    body = {k: v for k, v in FULL_HEARTBEAT.items() if k != "state"}

    error = expect_api_error(beat(machine, body), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["state"]


@pytest.mark.parametrize("state", ["idle", "brewing", "cleaning", "maintenance", "fault"])
def test_every_protocol_state_is_accepted(machine, state):
    assert beat(machine, {"state": state}).status_code == 200

    assert Device.objects.get(pk=machine.device.pk).state == state


# --- Bins ---------------------------------------------------------------------------------------


def test_bins_replace_only_the_bins_they_name(machine):
    beat(
        machine,
        FULL_HEARTBEAT,
        bins=[
            {"index": 1, "material": "BEAN-ARABICA", "remaining": 820, "capacity": 1000},
            {"index": 2, "material": "MILK-POWDER", "remaining": 400, "capacity": 500},
        ],
    )

    reply = beat(
        machine,
        FULL_HEARTBEAT,
        bins=[{"index": 2, "material": "MILK-POWDER", "remaining": 100, "capacity": 500}],
    )

    assert reply.status_code == 200
    flush_heartbeats()  # with Redis, moved levels are written behind until the flush
    bins = {b.index: b for b in DeviceBin.objects.filter(device=machine.device)}
    assert sorted(bins) == [1, 2]
    assert (bins[1].remaining, bins[1].level_pct) == (820, 82.0)
    assert (bins[2].remaining, bins[2].level_pct) == (100, 20.0)


def test_a_heartbeat_without_bins_leaves_the_bins_alone(machine):
    DeviceBinFactory(device=machine.device, index=1, remaining=300, level_pct=30)

    beat(machine, {"state": "idle"})

    assert list(DeviceBin.objects.filter(device=machine.device).values_list("index", "remaining")) == [
        (1, 300)
    ]


def test_an_unknown_material_is_400_naming_the_bin_and_nothing_is_written(machine, expect_api_error):
    body = {
        **FULL_HEARTBEAT,
        "state": "brewing",
        "bins": [
            {"index": 1, "material": "BEAN-ARABICA", "remaining": 820, "capacity": 1000},
            {"index": 2, "material": "UNOBTAINIUM", "remaining": 10, "capacity": 1000},
        ],
    }

    error = expect_api_error(beat(machine, body), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["bins.1.material"]
    assert "UNOBTAINIUM" in error["message"]
    device = Device.objects.get(pk=machine.device.pk)
    assert (device.state, device.is_online, device.last_seen_at, device.temperature_c) == (
        "unknown",
        False,
        None,
        None,
    )
    assert not DeviceBin.objects.filter(device=device).exists()
    assert history_of(device) == [(StatusEvent.REGISTERED, "unknown")]


def test_remaining_over_capacity_is_400_naming_the_bin_field_and_nothing_is_written(
    machine, expect_api_error
):
    body = {
        **FULL_HEARTBEAT,
        "bins": [
            {"index": 3, "material": "BEAN-ARABICA", "remaining": 820, "capacity": 1000},
            {"index": 4, "material": "SUGAR", "remaining": 1001, "capacity": 1000},
        ],
    }

    error = expect_api_error(beat(machine, body), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["bins.1.remaining"]
    assert not DeviceBin.objects.filter(device=machine.device).exists()
    assert Device.objects.get(pk=machine.device.pk).last_seen_at is None


def test_a_duplicate_bin_index_in_a_heartbeat_is_400_naming_bins(machine, expect_api_error):
    bin_1 = {"index": 1, "material": "BEAN-ARABICA", "remaining": 820, "capacity": 1000}

    error = expect_api_error(
        beat(machine, FULL_HEARTBEAT, bins=[bin_1, {**bin_1, "remaining": 10}]), 400, "VALIDATION_ERROR"
    )

    assert list(error["details"]["fields"]) == ["bins"]
    assert not DeviceBin.objects.filter(device=machine.device).exists()


# --- Online, state changes and history ----------------------------------------------------------


def test_an_offline_machines_heartbeat_brings_it_back_online_with_an_online_history_row(
    machine_client, merchant
):
    long_ago = timezone.now() - timedelta(hours=2)
    device = DeviceFactory(
        merchant=merchant, state="idle", is_online=False, last_seen_at=long_ago, status_changed_at=long_ago
    )
    client = machine_client(device)

    assert beat(client, {"state": "idle", "temperature_c": 91.0}).status_code == 200

    device.refresh_from_db()
    assert device.is_online is True
    assert device.last_seen_at > long_ago
    assert device.status_changed_at > long_ago
    rows = DeviceStatusHistory.objects.filter(device=device)
    assert list(rows.values_list("event", "state", "is_online", "temperature_c")) == [
        (StatusEvent.ONLINE, "idle", True, 91.0)
    ]


def test_a_state_change_writes_one_state_changed_row(machine):
    beat(machine, FULL_HEARTBEAT)

    beat(machine, FULL_HEARTBEAT, state="brewing")

    assert history_of(machine.device) == [
        (StatusEvent.REGISTERED, "unknown"),
        (StatusEvent.ONLINE, "idle"),
        (StatusEvent.STATE_CHANGED, "brewing"),
    ]
    assert Device.objects.get(pk=machine.device.pk).state == "brewing"


def test_an_unchanged_heartbeat_writes_no_history_row(machine):
    beat(machine, FULL_HEARTBEAT)
    rows_before = history_of(machine.device)

    for temperature in (92.6, 92.9, 93.1):
        assert beat(machine, FULL_HEARTBEAT, temperature_c=temperature).status_code == 200

    assert history_of(machine.device) == rows_before


def test_an_unchanged_heartbeat_reaches_the_database_after_the_write_behind_flush(machine):
    beat(machine, FULL_HEARTBEAT)
    first_seen = Device.objects.get(pk=machine.device.pk).last_seen_at

    beat(machine, FULL_HEARTBEAT, temperature_c=93.5, uptime_s=86430)
    flush_heartbeats()

    device = Device.objects.get(pk=machine.device.pk)
    assert device.temperature_c == 93.5
    assert device.uptime_s == 86430
    assert device.last_seen_at > first_seen


def test_an_unchanged_heartbeat_costs_the_token_lookup_and_one_update_or_nothing_with_redis(
    machine, settings, django_assert_num_queries
):
    beat(machine, FULL_HEARTBEAT)  # the full path: online, history, bins; the token is now cached with Redis
    # Without Redis: the token lookup, one conditional UPDATE, one look for pending commands and one for
    # an offered package. With Redis: the token, the readings and the "has commands" and "offered" flags
    # live in Redis; the database is not touched.
    expected = 0 if settings.REDIS_URL else 4

    with django_assert_num_queries(expected):
        reply = beat(machine, FULL_HEARTBEAT, temperature_c=92.7, sent_at="2026-11-24T08:15:30Z")

    assert reply.status_code == 200


def test_a_heartbeat_whose_bins_level_moved_a_whole_percent_updates_the_bin(machine):
    beat(machine, FULL_HEARTBEAT)

    beat(
        machine,
        FULL_HEARTBEAT,
        bins=[{"index": 1, "material": "BEAN-ARABICA", "remaining": 790, "capacity": 1000, "unit": "g"}],
    )
    flush_heartbeats()  # with Redis, moved levels are written behind until the flush

    assert DeviceBin.objects.get(device=machine.device, index=1).remaining == 790


# --- Write-behind flush and status samples ------------------------------------------------------


@needs_redis
def test_flush_heartbeats_writes_last_seen_and_temperature_to_the_database(registered):
    device = registered.device
    t0 = timezone.now()
    record_heartbeat(identity(device), StatusReading(state="idle", temperature_c=90.0), now=t0)
    t1 = t0 + timedelta(seconds=30)
    record_heartbeat(
        identity(device), StatusReading(state="idle", temperature_c=93.0, wifi_rssi_dbm=-70), now=t1
    )
    device.refresh_from_db()
    assert (device.last_seen_at, device.temperature_c) == (
        t0,
        90.0,
    )  # written behind, not yet in the database

    assert flush_heartbeats(t1) == 1

    device.refresh_from_db()
    assert (device.last_seen_at, device.temperature_c, device.wifi_rssi_dbm) == (t1, 93.0, -70)


@needs_redis
def test_flush_heartbeats_never_moves_last_seen_backwards(registered):
    device = registered.device
    t0 = timezone.now()
    record_heartbeat(identity(device), StatusReading(state="idle", temperature_c=90.0), now=t0)
    record_heartbeat(
        identity(device), StatusReading(state="idle", temperature_c=91.0), now=t0 + timedelta(seconds=30)
    )
    later = t0 + timedelta(seconds=60)
    Device.objects.filter(pk=device.pk).update(
        last_seen_at=later
    )  # a later full-path heartbeat got there first

    flush_heartbeats(t0 + timedelta(seconds=60))

    device.refresh_from_db()
    assert device.last_seen_at == later


@needs_redis
def test_flushing_twice_writes_nothing_the_second_time(registered):
    device = registered.device
    t0 = timezone.now()
    record_heartbeat(identity(device), StatusReading(state="idle"), now=t0)
    record_heartbeat(
        identity(device), StatusReading(state="idle", temperature_c=91.0), now=t0 + timedelta(seconds=30)
    )

    assert flush_heartbeats() == 1
    assert flush_heartbeats() == 0


def test_flush_heartbeats_without_redis_writes_nothing(settings, registered):
    settings.REDIS_URL = ""

    assert flush_heartbeats() == 0


def test_sample_status_history_writes_one_sample_per_online_machine_per_interval(merchant, settings):
    now = timezone.now()
    online = DeviceFactory.create_batch(2, merchant=merchant, is_online=True, temperature_c=92.0)
    offline = DeviceFactory(merchant=merchant, is_online=False)

    assert sample_status_history(now) == 2
    assert sample_status_history(now + timedelta(seconds=60)) == 0
    assert sample_status_history(now + timedelta(seconds=settings.STATUS_SAMPLE_INTERVAL_S)) == 2

    samples = DeviceStatusHistory.objects.filter(event=StatusEvent.SAMPLE)
    for device in online:
        assert samples.filter(device=device).count() == 2
        assert set(samples.filter(device=device).values_list("temperature_c", "is_online")) == {(92.0, True)}
    assert not samples.filter(device=offline).exists()
