"""The heartbeat's quiet lane: an unchanged report answered in one Redis round trip.

It must never change what a machine sees: the same replies, the same errors, commands still delivered,
a revoked token still refused, the throttle still counting. And its hand-written reader must accept
only what `HeartbeatSerializer` accepts, reading it to the same values.
"""

import copy
import os

import pytest

from coffeeshop.protocol.serializers import HeartbeatSerializer, plain_heartbeat_reading
from devices.models import DeviceBin
from devices.services import flush_heartbeats, revoke_device_token
from operations.services.commands import send_command
from tests.devices.test_heartbeat import FULL_HEARTBEAT, beat

REDIS_CONFIGURED = bool(os.environ.get("REDIS_URL", "").strip())
WITHOUT_REDIS = "the quiet lane needs Redis (REDIS_URL); without it every heartbeat takes the full path"
needs_redis = pytest.mark.skipif(not REDIS_CONFIGURED, reason=WITHOUT_REDIS)

BIN = FULL_HEARTBEAT["bins"][0]


def variant(**changes):
    body = copy.deepcopy(FULL_HEARTBEAT)
    for name, value in changes.items():
        if value is ...:
            body.pop(name, None)
        else:
            body[name] = value
    return body


# Every way a report can be odd: the reader must say "ask the serializer" (None) or agree with it.
PAYLOADS = [
    FULL_HEARTBEAT,
    {"state": "idle"},
    {"state": "brewing", "unknown_field": [1, 2]},
    variant(state="sleeping"),
    variant(state=None),
    variant(state=...),
    variant(temperature_c=None),
    variant(temperature_c="92.5"),
    variant(temperature_c=True),
    variant(temperature_c=251),
    variant(temperature_c=-50),
    variant(temperature_c=93),
    variant(temperature_c=float("nan")),
    variant(ip="::1"),
    variant(ip="10.0.0.256"),
    variant(ip=" 10.0.0.1"),
    variant(ip="010.0.0.1"),
    variant(ip=None),
    variant(wifi=None),
    variant(wifi={}),
    variant(wifi={"ssid": ""}),
    variant(wifi={"ssid": " shop "}),
    variant(wifi={"ssid": "x" * 65}),
    variant(wifi={"rssi_dbm": -151}),
    variant(wifi={"rssi_dbm": 1}),
    variant(wifi={"rssi_dbm": -60.0}),
    variant(wifi={"rssi_dbm": "-60"}),
    variant(wifi="shop-5g"),
    variant(firmware=""),
    variant(firmware="1.4.3 "),
    variant(firmware="x" * 33),
    variant(firmware="固件1.0"),
    variant(firmware=143),
    variant(uptime_s=-1),
    variant(uptime_s=12.5),
    variant(uptime_s="12"),
    variant(package_version=""),
    variant(package_version=None),
    variant(sent_at="2026-11-24T08:15:00"),
    variant(sent_at="2026-11-24T16:15:00+08:00"),
    variant(sent_at="yesterday"),
    variant(sent_at=1732436100),
    variant(bins=[]),
    variant(bins=None),
    variant(bins={"index": 1}),
    variant(bins=[{**BIN, "refilled": True}]),
    variant(bins=[{**BIN, "refilled": False}]),
    variant(bins=[{**BIN, "remaining": 1001}]),
    variant(bins=[{**BIN, "remaining": -1}]),
    variant(bins=[{**BIN, "capacity": 0}]),
    variant(bins=[{**BIN, "index": 256}]),
    variant(bins=[{**BIN, "index": "1"}]),
    variant(bins=[{**BIN, "unit": ""}]),
    variant(bins=[{**BIN, "unit": None}]),
    variant(bins=[{k: v for k, v in BIN.items() if k != "unit"}]),
    variant(bins=[{**BIN, "material": ""}]),
    variant(bins=[BIN, BIN]),
    variant(bins=[BIN, {**BIN, "index": 2, "material": "MILK-POWDER"}]),
    variant(bins=[{**BIN, "index": i} for i in range(65)]),
    ["state", "idle"],
    "idle",
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_the_plain_reader_accepts_only_what_the_serializer_accepts_and_reads_it_the_same(payload):
    plain = plain_heartbeat_reading(payload)
    if plain is None:
        return  # the serializer decides, with its own words
    serializer = HeartbeatSerializer(data=payload)
    assert serializer.is_valid(), serializer.errors
    assert plain == serializer.to_reading()


def test_the_plain_reader_takes_the_everyday_report():
    # Otherwise the lane is never used and the test above passes for nothing.
    assert plain_heartbeat_reading(FULL_HEARTBEAT) is not None
    assert plain_heartbeat_reading({"state": "idle"}) is not None


@needs_redis
def test_a_quiet_heartbeat_touches_no_table_and_replies_as_the_full_path_does(
    machine, django_assert_num_queries
):
    full = beat(machine, FULL_HEARTBEAT)

    with django_assert_num_queries(0):
        quiet = beat(machine, FULL_HEARTBEAT, temperature_c=92.6)

    assert full.status_code == quiet.status_code == 200
    assert set(full.json()["data"]) == set(quiet.json()["data"])
    assert quiet.json() == {
        "ok": True,
        "data": {**full.json()["data"], "server_time": quiet.json()["data"]["server_time"]},
    }
    flush_heartbeats()
    machine.device.refresh_from_db()
    assert machine.device.temperature_c == 92.6


@needs_redis
def test_moved_bin_levels_cost_no_query_and_reach_the_database_and_the_live_page_with_the_flush(
    machine, django_assert_num_queries, django_capture_on_commit_callbacks, monkeypatch
):
    pushed = []
    monkeypatch.setattr("coffeeshop.live.send_to_groups", pushed.extend)
    beat(machine, FULL_HEARTBEAT)

    with django_assert_num_queries(0):
        reply = beat(machine, FULL_HEARTBEAT, bins=[{**BIN, "remaining": 640}])
    assert reply.status_code == 200
    assert DeviceBin.objects.get(device=machine.device, index=1).level_pct == 82.0  # not yet
    pushed.clear()
    with django_capture_on_commit_callbacks(execute=True):
        flush_heartbeats()

    assert DeviceBin.objects.get(device=machine.device, index=1).level_pct == 64.0
    bins_pushed = [m["payload"] for _group, m in pushed if m["event"] == "device.bins"]
    assert bins_pushed and bins_pushed[0]["id"] == machine.device.pk
    assert [(b["index"], b["level_pct"]) for b in bins_pushed[0]["bins"]] == [(1, 64.0)]


@needs_redis
def test_a_low_bin_on_the_quiet_lane_alarms_at_the_flush_and_a_top_up_clears_it(
    machine, django_capture_on_commit_callbacks
):
    from operations.tasks import flush_heartbeats as periodic_flush

    beat(machine, FULL_HEARTBEAT)
    beat(machine, FULL_HEARTBEAT, bins=[{**BIN, "remaining": 80}])
    with django_capture_on_commit_callbacks(execute=True):
        assert periodic_flush.apply().get()["flushed"] == 1

    assert list(machine.device.alarms.filter(is_active=True).values_list("type", "bin_index")) == [
        ("material_low", 1)
    ]
    beat(machine, FULL_HEARTBEAT, bins=[{**BIN, "remaining": 950}])  # topped up without saying so
    periodic_flush.apply()
    assert not machine.device.alarms.filter(is_active=True).exists()


@needs_redis
def test_a_level_written_behind_never_replaces_a_newer_materials_report(
    machine, django_capture_on_commit_callbacks
):
    beat(machine, FULL_HEARTBEAT)
    beat(machine, FULL_HEARTBEAT, bins=[{**BIN, "remaining": 600}])  # written behind
    with django_capture_on_commit_callbacks(execute=True):
        refill = machine.post(
            f"/api/v1/devices/{machine.device.pk}/materials/report",
            {"bins": [{**BIN, "remaining": 1000, "refilled": True}]},
            format="json",
        )
    assert refill.status_code == 200

    flush_heartbeats()

    assert DeviceBin.objects.get(device=machine.device, index=1).remaining == 1000


@needs_redis
def test_a_bin_first_reported_on_the_quiet_lane_is_created_by_the_flush(machine):
    beat(machine, FULL_HEARTBEAT)
    second = {**BIN, "index": 2, "material": "MILK-POWDER", "remaining": 300, "capacity": 500}

    beat(machine, FULL_HEARTBEAT, bins=[BIN, second])
    flush_heartbeats()

    assert sorted(DeviceBin.objects.filter(device=machine.device).values_list("index", "level_pct")) == [
        (1, 82.0),
        (2, 60.0),
    ]


@needs_redis
def test_a_command_sent_after_quiet_heartbeats_rides_on_the_next_one(
    machine, django_capture_on_commit_callbacks
):
    beat(machine, FULL_HEARTBEAT)
    beat(machine, FULL_HEARTBEAT)
    with django_capture_on_commit_callbacks(execute=True):
        command = send_command(machine.device, "open_door", {"duration_s": 5})

    reply = beat(machine, FULL_HEARTBEAT)

    assert [c["command_id"] for c in reply.json()["data"]["commands"]] == [str(command.pk)]


@needs_redis
def test_a_revoked_token_is_refused_although_its_heartbeats_were_quiet(
    machine, django_capture_on_commit_callbacks, expect_api_error
):
    beat(machine, FULL_HEARTBEAT)
    assert beat(machine, FULL_HEARTBEAT).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        revoke_device_token(machine.device)

    expect_api_error(beat(machine, FULL_HEARTBEAT), 401, "UNAUTHORIZED")


@needs_redis
def test_an_unknown_material_on_a_quiet_machine_is_still_400_naming_the_bin(machine, expect_api_error):
    beat(machine, FULL_HEARTBEAT)

    reply = beat(machine, FULL_HEARTBEAT, bins=[{**BIN, "material": "NO-SUCH-BEAN"}])

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["bins.0.material"]


@needs_redis
def test_a_material_only_another_merchant_has_is_400_on_the_quiet_lane_too(
    machine, other_merchant, expect_api_error
):
    from tests.factories import MaterialFactory

    MaterialFactory(merchant=other_merchant, code="RIVAL-BEAN")
    beat(machine, FULL_HEARTBEAT)
    beat(machine, FULL_HEARTBEAT)  # quiet now: the lane knows this machine's merchant

    reply = beat(machine, FULL_HEARTBEAT, bins=[{**BIN, "material": "RIVAL-BEAN"}])

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["bins.0.material"]


@needs_redis
def test_a_temperature_out_of_range_leaves_the_quiet_lane_and_opens_its_alarm(machine):
    beat(machine, FULL_HEARTBEAT)

    beat(machine, FULL_HEARTBEAT, temperature_c=104.0)

    assert machine.device.alarms.filter(is_active=True, type="temperature_out_of_range").count() == 1


@needs_redis
def test_the_quiet_lane_survives_redis_forgetting_its_script_and_dropping_its_connections(
    machine, django_assert_num_queries
):
    from coffeeshop.redis import get_redis

    beat(machine, FULL_HEARTBEAT)
    assert beat(machine, FULL_HEARTBEAT).status_code == 200  # this worker now holds a connection
    redis = get_redis()
    redis.script_flush()  # as after a Redis restart
    redis.client_kill_filter(_type="normal", skipme=True)

    with django_assert_num_queries(0):  # still the quiet lane, not an error and not the full path
        reply = beat(machine, FULL_HEARTBEAT, temperature_c=92.9)

    assert reply.status_code == 200
    flush_heartbeats()
    machine.device.refresh_from_db()
    assert machine.device.temperature_c == 92.9
