"""Refills from the machine (flagged, or only seen in the level) and from staff, each one event, each
clearing the bin's low-stock alarms; thresholds that start from the material and follow it."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from audit.models import OperationLog
from devices.models import DeviceBin
from inventory.models import Material, Refill, RefillSource
from inventory.services import forecast_bins, refill_bin, set_bin_threshold, update_material
from operations.models import Alarm, AlarmType
from tests.devices.test_heartbeat import needs_redis
from tests.factories import DeviceBinFactory, DeviceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def reading(index=1, material="BEAN-ARABICA", remaining=820, capacity=1000, **extra):
    return {
        "index": index,
        "material": material,
        "remaining": remaining,
        "capacity": capacity,
        "unit": "g",
        **extra,
    }


def report(machine, *bins):
    reply = machine.post(
        f"/api/v1/devices/{machine.device.pk}/materials/report",
        {"sent_at": "2026-11-24T08:15:00Z", "bins": list(bins)},
        format="json",
    )
    assert reply.status_code == 200, reply.content
    return reply


def heartbeat(machine, *bins):
    reply = machine.post(
        f"/api/v1/devices/{machine.device.pk}/status", {"state": "idle", "bins": list(bins)}, format="json"
    )
    assert reply.status_code == 200, reply.content
    return reply


def active_alarms(device, index=1):
    return list(
        Alarm.objects.filter(device=device, bin_index=index, is_active=True).values_list("type", flat=True)
    )


def the_bin(device, index=1) -> DeviceBin:
    return DeviceBin.objects.get(device=device, index=index)


# --- From the machine -------------------------------------------------------------------------------------


def test_a_refill_the_machine_flags_is_one_event_with_the_amount_and_clears_the_alarm(machine):
    report(machine, reading(remaining=90))
    assert active_alarms(machine.device) == [AlarmType.MATERIAL_LOW]

    report(machine, reading(remaining=950, refilled=True))
    report(machine, reading(remaining=950, refilled=True))  # the reply was lost: sent again

    refill = Refill.objects.get()
    assert (refill.source, refill.bin_index, refill.material_code) == (
        RefillSource.MACHINE,
        1,
        "BEAN-ARABICA",
    )
    assert (refill.remaining_before, refill.remaining_after, refill.amount) == (90, 950, 860)
    assert refill.user is None
    assert active_alarms(machine.device) == []
    assert the_bin(machine.device).last_refilled_at is not None


def test_a_refill_nobody_reported_is_seen_in_the_level_once(machine):
    report(machine, reading(remaining=100))
    forecast_bins()
    heartbeat(machine, reading(remaining=900))  # refilled, but the machine forgot to say so

    assert forecast_bins()["refills_seen"] == 1
    assert forecast_bins()["refills_seen"] == 0
    refill = Refill.objects.get()
    assert (refill.source, refill.remaining_before, refill.remaining_after) == (
        RefillSource.INFERRED,
        100,
        900,
    )
    assert active_alarms(machine.device) == []


def test_a_rise_the_machine_then_flags_is_the_same_refill_marked_reported(machine):
    report(machine, reading(remaining=100))
    forecast_bins()
    heartbeat(machine, reading(remaining=900))
    forecast_bins()

    report(machine, reading(remaining=900, refilled=True))

    assert list(Refill.objects.values_list("source", flat=True)) == [RefillSource.MACHINE]


def test_a_small_rise_is_a_wobble_not_a_refill(machine):
    report(machine, reading(remaining=500))
    forecast_bins()
    report(machine, reading(remaining=540))

    forecast_bins()

    assert not Refill.objects.exists()


# --- From staff -------------------------------------------------------------------------------------------


@pytest.fixture
def low_bin(registered, machine):
    report(machine, reading(remaining=100))
    assert active_alarms(machine.device) == [AlarmType.MATERIAL_LOW]
    return the_bin(machine.device)


def test_ops_record_a_refill_through_the_api(staff_client, merchant, low_bin):
    ops = staff_client(Role.OPS, merchants=[merchant])

    reply = ops.post(f"/api/v1/bins/{low_bin.pk}/refill", {"amount": 700}, format="json")

    assert reply.status_code == 201, reply.content
    body = reply.json()["data"]
    assert (body["amount"], body["remaining_after"], body["source"], body["user"]) == (
        700,
        800,
        "staff",
        ops.user.email,
    )
    low_bin.refresh_from_db()
    assert (low_bin.remaining, low_bin.level_pct) == (800, 80)
    assert active_alarms(low_bin.device) == []
    assert OperationLog.objects.filter(action="bin.refilled", actor=ops.user).exists()
    bins = ops.get("/api/v1/bins").json()["data"]["results"]
    assert [(b["id"], b["state"], b["remaining"]) for b in bins] == [(low_bin.pk, "ok", 800)]


@pytest.mark.parametrize(
    ("amount", "why"),
    [(901, "at most 900"), (0, "more than 0"), (-5, None), ("lots", None)],
)
def test_a_refill_that_cannot_be_is_a_400_and_changes_nothing(
    staff_client, merchant, low_bin, expect_api_error, amount, why
):
    ops = staff_client(Role.OPS, merchants=[merchant])

    error = expect_api_error(
        ops.post(f"/api/v1/bins/{low_bin.pk}/refill", {"amount": amount}, format="json"),
        400,
        "VALIDATION_ERROR",
    )

    assert "amount" in error["details"]["fields"]
    if why:
        assert why in error["message"] + str(error["details"])
    assert not Refill.objects.exists()
    assert the_bin(low_bin.device).remaining == 100


def test_viewers_and_other_merchants_cannot_refill(
    staff_client, merchant, other_merchant, low_bin, expect_api_error
):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])
    stranger = staff_client(Role.OPS, merchants=[other_merchant])

    expect_api_error(
        viewer.post(f"/api/v1/bins/{low_bin.pk}/refill", {"amount": 10}, format="json"), 403, "FORBIDDEN"
    )
    expect_api_error(
        stranger.post(f"/api/v1/bins/{low_bin.pk}/refill", {"amount": 10}, format="json"), 404, "NOT_FOUND"
    )
    expect_api_error(stranger.get(f"/api/v1/bins/{low_bin.pk}"), 404, "NOT_FOUND")

    assert not Refill.objects.exists()
    assert stranger.get("/api/v1/bins").json()["data"]["results"] == []


@needs_redis
def test_a_staff_refill_is_not_undone_by_an_older_level_written_behind(machine, low_bin, merchant, make_user):
    """A quiet heartbeat's level waits in Redis for the flush; a refill recorded meanwhile is newer."""
    from devices.services import flush_heartbeats

    heartbeat(machine, reading(remaining=100), reading(2, "MILK-POWDER", remaining=300, capacity=500))
    heartbeat(machine, reading(remaining=90), reading(2, "MILK-POWDER", remaining=300, capacity=500))
    assert the_bin(machine.device).remaining == 100  # 90 waits in Redis
    refill_bin(low_bin, amount=800, user=make_user(Role.OPS, merchants=[merchant]))
    flush_heartbeats()

    assert the_bin(machine.device).remaining == 900


# --- Thresholds -------------------------------------------------------------------------------------------


def test_a_new_bin_takes_its_materials_default_threshold(machine, merchant):
    Material.objects.filter(merchant=merchant, code="MILK-POWDER").update(low_threshold_pct=30)

    report(machine, reading(2, "MILK-POWDER", remaining=140, capacity=500))

    bin_ = the_bin(machine.device, 2)
    assert (bin_.low_threshold_pct, bin_.threshold_follows_material) == (30, True)
    assert active_alarms(machine.device, 2) == [AlarmType.MATERIAL_LOW]  # 28 % is low at 30 %


def test_a_materials_new_default_moves_the_bins_that_follow_it_and_their_alarms(machine, merchant):
    report(machine, reading(1, remaining=200), reading(3, remaining=200))
    set_bin_threshold(the_bin(machine.device, 3), 10)  # staff set this one: it keeps its own

    update_material(Material.objects.get(merchant=merchant, code="BEAN-ARABICA"), low_threshold_pct=25)

    assert the_bin(machine.device, 1).low_threshold_pct == 25
    assert the_bin(machine.device, 3).low_threshold_pct == 10
    assert active_alarms(machine.device, 1) == [AlarmType.MATERIAL_LOW]
    assert active_alarms(machine.device, 3) == []


def test_ops_set_a_bins_threshold_and_give_it_back_to_the_material(staff_client, merchant, low_bin):
    ops = staff_client(Role.OPS, merchants=[merchant])

    reply = ops.patch(f"/api/v1/bins/{low_bin.pk}", {"low_threshold_pct": 5}, format="json")

    assert reply.status_code == 200, reply.content
    assert (reply.json()["data"]["low_threshold_pct"], reply.json()["data"]["state"]) == (5, "ok")
    assert active_alarms(low_bin.device) == []  # 10 % is no longer low
    cleared = Alarm.objects.get(device=low_bin.device, bin_index=1)
    assert "threshold" in cleared.clear_reason

    reply = ops.patch(f"/api/v1/bins/{low_bin.pk}", {"low_threshold_pct": None}, format="json")

    assert reply.json()["data"]["low_threshold_pct"] == 15
    assert reply.json()["data"]["threshold_follows_material"] is True
    assert active_alarms(low_bin.device) == [AlarmType.MATERIAL_LOW]
    assert OperationLog.objects.filter(action="bin.threshold_changed").count() == 2


def test_a_threshold_out_of_range_is_a_400(staff_client, merchant, low_bin, expect_api_error):
    ops = staff_client(Role.OPS, merchants=[merchant])
    expect_api_error(
        ops.patch(f"/api/v1/bins/{low_bin.pk}", {"low_threshold_pct": 140}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    assert the_bin(low_bin.device).low_threshold_pct == 15


# --- Days to empty ----------------------------------------------------------------------------------------


def test_days_to_empty_come_from_the_drop_since_the_last_refill(merchant):
    device = DeviceFactory(merchant=merchant)
    start = timezone.now() - timedelta(days=2)
    bin_ = DeviceBinFactory(device=device, index=1, remaining=1000, level_pct=100, reported_at=start)
    forecast_bins()
    DeviceBin.objects.filter(pk=bin_.pk).update(
        remaining=600, level_pct=60, reported_at=start + timedelta(days=2)
    )

    forecast_bins()

    bin_.refresh_from_db()
    assert bin_.drain_per_day == pytest.approx(200)
    assert (bin_.empty_at - bin_.reported_at) == timedelta(days=3)


# --- Under concurrent reports -------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_of_low_bins_open_one_alarm_per_bin_cleared_by_each_kind_of_refill(
    registered, merchant, make_user
):
    if connection.vendor != "postgresql":
        pytest.skip(reason="row-level concurrency is only meaningful on PostgreSQL")
    device = registered.device
    barrier, errors = threading.Barrier(10), []

    def machine_reports(remaining_1, remaining_2, refilled=False):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Device {registered.token}")
        return client.post(
            f"/api/v1/devices/{device.pk}/materials/report",
            {
                "bins": [
                    reading(1, remaining=remaining_1, refilled=refilled),
                    reading(2, remaining=remaining_2),
                ]
            },
            format="json",
        )

    def low_report(n):
        try:
            barrier.wait()
            reply = machine_reports(100 - n, 0)  # bin 1 low, bin 2 empty
            assert reply.status_code == 200, reply.content
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=low_report, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    opened = Alarm.objects.filter(device=device).order_by("bin_index")
    assert [(a.bin_index, a.type, a.is_active) for a in opened] == [
        (1, AlarmType.MATERIAL_LOW, True),
        (2, AlarmType.MATERIAL_EMPTY, True),
    ]
    assert sum(a.count for a in opened) == 20

    assert machine_reports(900, 0, refilled=True).status_code == 200  # the machine refills bin 1
    refill_bin(the_bin(device, 2), amount=800, user=make_user(Role.OPS, merchants=[merchant]))  # staff, bin 2

    assert Alarm.objects.filter(device=device, is_active=True).count() == 0
    assert sorted(Refill.objects.values_list("bin_index", "source")) == [
        (1, RefillSource.MACHINE),
        (2, RefillSource.STAFF),
    ]
