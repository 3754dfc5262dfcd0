"""One alarm per real problem, bumped while it lasts, cleared when it is gone, and told to the merchant."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from accounts.models import Role
from operations.models import Alarm, AlarmType, MaintenanceWindow, NotificationChannel, Severity
from operations.services import alarms, notifications
from operations.tasks import mark_silent_devices_offline
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db


def beat(machine, **body):
    reply = machine.post(
        f"/api/v1/devices/{machine.device.pk}/status", {"state": "idle", **body}, format="json"
    )
    assert reply.status_code == 200, reply.content


def test_a_repeated_problem_is_one_alarm_with_a_count(merchant):
    device = DeviceFactory(merchant=merchant)
    first, created = alarms.open_or_bump_alarm(device, AlarmType.OFFLINE, Severity.CRITICAL)
    again, created_again = alarms.open_or_bump_alarm(device, AlarmType.OFFLINE, Severity.CRITICAL)
    assert created and not created_again and first.pk == again.pk
    assert Alarm.objects.get().count == 2


def test_bins_have_their_own_alarms(merchant):
    device = DeviceFactory(merchant=merchant)
    alarms.open_or_bump_alarm(device, AlarmType.MATERIAL_LOW, Severity.WARNING, bin_index=1)
    alarms.open_or_bump_alarm(device, AlarmType.MATERIAL_LOW, Severity.WARNING, bin_index=2)
    assert Alarm.objects.filter(is_active=True).count() == 2


def test_a_silent_machine_raises_an_offline_alarm_that_clears_when_it_comes_back(
    machine, django_capture_on_commit_callbacks
):
    from devices.models import Device
    from devices.services import flush_heartbeats

    beat(machine)
    flush_heartbeats()  # with Redis the heartbeat was written behind; time passes after it lands
    Device.objects.filter(pk=machine.device.pk).update(last_seen_at=timezone.now() - timedelta(minutes=11))
    with django_capture_on_commit_callbacks(execute=True):
        assert mark_silent_devices_offline.apply().get() == 1
    alarm = Alarm.objects.get(device=machine.device, type=AlarmType.OFFLINE)
    assert alarm.is_active and alarm.severity == Severity.CRITICAL
    beat(machine)
    alarm.refresh_from_db()
    assert not alarm.is_active and alarm.cleared_at is not None and alarm.clear_reason


def test_overheating_opens_an_alarm_and_cooling_down_clears_it(machine):
    beat(machine, temperature_c=92)
    beat(machine, temperature_c=104)
    beat(machine, temperature_c=105)
    alarm = Alarm.objects.get(type=AlarmType.TEMPERATURE_OUT_OF_RANGE)
    assert alarm.is_active and alarm.count == 2
    beat(machine, temperature_c=93)
    alarm.refresh_from_db()
    assert not alarm.is_active


def test_a_bin_running_dry_alarms_and_a_refill_clears_it(machine):
    def report(remaining, refilled=False):
        reply = machine.post(
            f"/api/v1/devices/{machine.device.pk}/materials/report",
            {
                "bins": [
                    {
                        "index": 1,
                        "material": "BEAN-ARABICA",
                        "remaining": remaining,
                        "capacity": 1000,
                        "refilled": refilled,
                    }
                ]
            },
            format="json",
        )
        assert reply.status_code == 200

    report(100)
    assert Alarm.objects.get(type=AlarmType.MATERIAL_LOW, bin_index=1).is_active
    report(0)
    assert Alarm.objects.get(type=AlarmType.MATERIAL_EMPTY, bin_index=1).is_active
    assert not Alarm.objects.filter(type=AlarmType.MATERIAL_LOW, is_active=True).exists()
    report(1000, refilled=True)
    assert not Alarm.objects.filter(is_active=True).exists()


def test_staff_acknowledge_and_clear_by_hand_and_a_viewer_may_not(
    machine, staff_client, merchant, other_merchant
):
    alarm, _ = alarms.open_or_bump_alarm(machine.device, AlarmType.OFFLINE, Severity.CRITICAL)
    viewer, ops = staff_client(Role.VIEWER, [merchant]), staff_client(Role.OPS, [merchant])
    stranger = staff_client(Role.ADMIN, [other_merchant])
    assert viewer.get("/api/v1/alarms?active=true").json()["data"]["count"] == 1
    assert stranger.get("/api/v1/alarms").json()["data"]["count"] == 0
    assert stranger.post(f"/api/v1/alarms/{alarm.pk}/acknowledge").status_code == 404
    assert viewer.post(f"/api/v1/alarms/{alarm.pk}/acknowledge").status_code == 403
    acked = ops.post(f"/api/v1/alarms/{alarm.pk}/acknowledge").json()["data"]
    assert acked["acknowledged_at"] and acked["acknowledged_by"] == ops.user.pk
    cleared = ops.post(f"/api/v1/alarms/{alarm.pk}/clear", {"reason": "checked on site"}, format="json")
    assert cleared.json()["data"]["is_active"] is False
    assert cleared.json()["data"]["clear_reason"] == "checked on site"
    assert ops.post(f"/api/v1/alarms/{alarm.pk}/clear", {}, format="json").status_code == 409


def test_alarms_notify_by_email_and_webhook_but_not_during_maintenance(merchant, mailoutbox, monkeypatch):
    device = DeviceFactory(merchant=merchant)
    NotificationChannel.objects.create(merchant=merchant, kind="email", target="ops@brew.example.com")
    NotificationChannel.objects.create(
        merchant=merchant, kind="email", target="boss@brew.example.com", min_severity=Severity.CRITICAL
    )
    posted = []
    monkeypatch.setattr(
        notifications.httpx,
        "post",
        lambda url, **kw: posted.append((url, kw)) or type("R", (), {"is_success": True})(),
    )  # the receiving web service cannot run here
    NotificationChannel.objects.create(
        merchant=merchant, kind="webhook", target="https://hooks.example.com/a", secret="s3cret"
    )
    warning, _ = alarms.open_or_bump_alarm(device, AlarmType.MATERIAL_LOW, Severity.WARNING, bin_index=1)
    reached = notifications.notify_alarm(warning.pk)
    assert sorted(reached) == ["https://hooks.example.com/a", "ops@brew.example.com"]
    assert [m.to for m in mailoutbox] == [["ops@brew.example.com"]]
    body = posted[0][1]["content"]
    assert posted[0][1]["headers"]["X-Coffeeshop-Signature"] == notifications.signature("s3cret", body)
    assert notifications.notify_alarm(warning.pk) == []  # once only

    MaintenanceWindow.objects.create(
        device=device,
        starts_at=timezone.now() - timedelta(hours=1),
        ends_at=timezone.now() + timedelta(hours=1),
        reason="descaling",
    )
    during, _ = alarms.open_or_bump_alarm(device, AlarmType.OFFLINE, Severity.CRITICAL)
    assert notifications.notify_alarm(during.pk) == []
    assert len(mailoutbox) == 1 and len(posted) == 1
    assert Alarm.objects.filter(pk=during.pk, is_active=True).exists()  # recorded all the same


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_of_one_problem_make_one_alarm_on_postgresql(merchant):
    if connection.vendor != "postgresql":
        pytest.skip(reason="row-level concurrency is only meaningful on PostgreSQL")
    device = DeviceFactory(merchant=merchant)
    barrier = threading.Barrier(20)
    errors = []

    def trigger():
        try:
            barrier.wait()
            alarms.open_or_bump_alarm(device, AlarmType.OFFLINE, Severity.CRITICAL)
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=trigger) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    alarm = Alarm.objects.get(device=device, type=AlarmType.OFFLINE)
    assert alarm.count == 20


def test_a_bin_that_stays_low_bumps_its_one_alarm_and_reopens_it_after_a_clear_by_hand(machine, make_user):
    def report(remaining):
        reply = machine.post(
            f"/api/v1/devices/{machine.device.pk}/materials/report",
            {"bins": [{"index": 1, "material": "BEAN-ARABICA", "remaining": remaining, "capacity": 1000}]},
            format="json",
        )
        assert reply.status_code == 200, reply.content

    report(150)
    report(120)
    alarm = Alarm.objects.get(type=AlarmType.MATERIAL_LOW, bin_index=1)
    assert alarm.is_active and alarm.count == 2 and "12%" in alarm.message

    alarms.clear_alarm_by_hand(
        alarm, user=make_user(Role.OPS, [machine.device.merchant]), reason="refill due"
    )
    report(110)

    reopened = Alarm.objects.get(type=AlarmType.MATERIAL_LOW, bin_index=1, is_active=True)
    assert reopened.pk != alarm.pk and reopened.count == 1 and "11%" in reopened.message
