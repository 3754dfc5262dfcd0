"""The server's judgement of "online": a machine silent for longer than its offline timeout goes offline."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from devices.models import Device, DeviceStatusHistory, StatusEvent
from devices.services import DeviceIdentity, StatusReading, mark_silent_devices_offline, record_heartbeat
from operations import tasks as operations_tasks
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def silent_for(merchant, seconds, **fields):
    return DeviceFactory(
        merchant=merchant,
        is_online=True,
        state="brewing",
        last_seen_at=NOW - timedelta(seconds=seconds),
        **fields,
    )


def offline_rows(device):
    return DeviceStatusHistory.objects.filter(device=device, event=StatusEvent.OFFLINE)


def test_a_machine_silent_for_longer_than_the_default_ten_minutes_goes_offline(merchant, settings):
    assert settings.DEVICE_OFFLINE_TIMEOUT_S == 600
    device = silent_for(merchant, 601)

    assert mark_silent_devices_offline(now=NOW) == [device.pk]

    device.refresh_from_db()
    assert device.is_online is False
    assert device.status_changed_at == NOW
    assert device.state == "brewing"  # what it was doing stays what it last said
    assert list(offline_rows(device).values_list("recorded_at", "state", "is_online")) == [
        (NOW, "brewing", False)
    ]


def test_a_machine_heard_from_within_the_timeout_stays_online(merchant):
    fresh = silent_for(merchant, 599)
    just_now = silent_for(merchant, 0)

    assert mark_silent_devices_offline(now=NOW) == []

    assert set(Device.objects.filter(is_online=True).values_list("pk", flat=True)) == {fresh.pk, just_now.pk}
    assert not DeviceStatusHistory.objects.exists()


def test_a_shorter_per_device_timeout_takes_a_machine_offline_sooner(merchant):
    impatient = silent_for(merchant, 120, offline_timeout_s=60)
    default = silent_for(merchant, 120)

    assert mark_silent_devices_offline(now=NOW) == [impatient.pk]

    assert Device.objects.get(pk=default.pk).is_online is True


def test_a_longer_per_device_timeout_keeps_a_machine_online_past_the_default(merchant):
    patient = silent_for(merchant, 1200, offline_timeout_s=3600)
    past_its_own = silent_for(merchant, 3601, offline_timeout_s=3600)

    assert mark_silent_devices_offline(now=NOW) == [past_its_own.pk]

    assert Device.objects.get(pk=patient.pk).is_online is True


def test_running_twice_writes_the_offline_row_once(merchant):
    device = silent_for(merchant, 900)
    mark_silent_devices_offline(now=NOW)

    assert mark_silent_devices_offline(now=NOW + timedelta(minutes=5)) == []

    device.refresh_from_db()
    assert device.status_changed_at == NOW
    assert offline_rows(device).count() == 1


def test_an_offline_machine_is_left_alone(merchant):
    device = DeviceFactory(merchant=merchant, is_online=False, last_seen_at=NOW - timedelta(days=3))

    assert mark_silent_devices_offline(now=NOW) == []

    assert not offline_rows(device).exists()


def test_the_next_heartbeat_brings_an_offline_machine_back(registered, django_capture_on_commit_callbacks):
    device = registered.device
    identity = DeviceIdentity(device.pk, device.merchant_id)
    started = timezone.now()
    record_heartbeat(identity, StatusReading(state="idle", temperature_c=92.0), now=started)
    with django_capture_on_commit_callbacks(execute=True):
        assert mark_silent_devices_offline(now=started + timedelta(minutes=11)) == [device.pk]

    record_heartbeat(
        identity, StatusReading(state="idle", temperature_c=92.0), now=started + timedelta(minutes=12)
    )

    device.refresh_from_db()
    assert device.is_online is True
    assert device.last_seen_at == started + timedelta(minutes=12)
    events = list(device.status_history.order_by("recorded_at").values_list("event", flat=True))
    assert events == [StatusEvent.REGISTERED, StatusEvent.ONLINE, StatusEvent.OFFLINE, StatusEvent.ONLINE]


def test_the_next_heartbeat_over_http_brings_an_offline_machine_back(
    machine, django_capture_on_commit_callbacks
):
    url = f"/api/v1/devices/{machine.device.pk}/status"
    assert machine.post(url, {"state": "idle"}, format="json").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        mark_silent_devices_offline(now=timezone.now() + timedelta(minutes=11))
    assert Device.objects.get(pk=machine.device.pk).is_online is False

    assert machine.post(url, {"state": "idle"}, format="json").status_code == 200

    assert Device.objects.get(pk=machine.device.pk).is_online is True


def test_the_offline_and_flush_schedules_are_in_the_database_after_migrations():
    offline = PeriodicTask.objects.get(name="Mark silent machines offline")
    flush = PeriodicTask.objects.get(name="Flush heartbeats")

    assert (offline.task, offline.enabled, offline.interval.every, offline.interval.period) == (
        "operations.mark_silent_devices_offline",
        True,
        30,
        "seconds",
    )
    assert (flush.task, flush.enabled, flush.interval.every, flush.interval.period) == (
        "operations.flush_heartbeats",
        True,
        15,
        "seconds",
    )


def test_the_scheduled_task_names_are_tasks_a_worker_knows():
    from coffeeshop.celery import app

    app.loader.import_default_modules()  # what a worker does at start: import every app's tasks module
    scheduled = PeriodicTask.objects.filter(name__in=["Mark silent machines offline", "Flush heartbeats"])

    assert len(scheduled) == 2
    for task in scheduled:
        assert task.task in app.tasks, task.task


def test_the_offline_task_runs_eagerly_and_marks_silent_machines_offline(merchant):
    silent = DeviceFactory(
        merchant=merchant, is_online=True, last_seen_at=timezone.now() - timedelta(minutes=11)
    )
    fresh = DeviceFactory(merchant=merchant, is_online=True, last_seen_at=timezone.now())

    result = operations_tasks.mark_silent_devices_offline.apply()

    assert result.successful()
    assert result.get() == 1
    assert Device.objects.get(pk=silent.pk).is_online is False
    assert Device.objects.get(pk=fresh.pk).is_online is True


def test_the_flush_task_runs_eagerly_and_samples_online_machines(merchant):
    DeviceFactory(merchant=merchant, is_online=True, temperature_c=91.0)

    result = operations_tasks.flush_heartbeats.apply()

    assert result.successful()
    assert result.get()["sampled"] == 1
    assert DeviceStatusHistory.objects.filter(event=StatusEvent.SAMPLE).count() == 1
