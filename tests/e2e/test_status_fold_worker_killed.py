"""The hourly fold of status history whose Celery worker is SIGKILLed midway is finished by the next run
(as beat sends it every five minutes): every hour folded once and exactly as a fold from scratch would.
Real worker processes, real Redis."""

import os
import secrets
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Device, DeviceStatusHistory, DeviceStatusHour, StatusEvent
from devices.services.history_rollup import fold_hour
from devices.tasks import fold_status_history
from tests.e2e.conftest import celery_worker
from tests.e2e.test_worker_killed import wait_for
from tests.factories import DeviceFactory, MerchantFactory

pytestmark = pytest.mark.django_db(transaction=True)

MACHINES, HOURS, PER_HOUR = 300, 48, 4
WORKER_ENV = {"STATUS_FOLD_HOURS_PER_RUN": str(HOURS)}


def folded() -> dict:
    return {
        (h.device_id, h.hour): (h.online_s, h.known_s, h.samples, h.offline_events)
        for h in DeviceStatusHour.objects.all()
    }


def test_a_fold_whose_worker_is_killed_is_finished_by_the_next_run(django_db_blocker, tmp_path):
    merchant = MerchantFactory(name="Killed fold")
    devices = Device.objects.bulk_create(DeviceFactory.build_batch(MACHINES, merchant=merchant))
    first_hour = (timezone.now() - timedelta(hours=HOURS + 1)).replace(minute=0, second=0, microsecond=0)
    # Every machine drops offline for a quarter of an hour now and then.
    DeviceStatusHistory.objects.bulk_create(
        DeviceStatusHistory(
            device=device, recorded_at=first_hour + timedelta(minutes=15 * q),
            is_online=(n + q) % 7 != 0, event=StatusEvent.OFFLINE if (n + q) % 7 == 0 else StatusEvent.SAMPLE,
            state="idle", temperature_c=90 + q % 5,
        )
        for n, device in enumerate(devices)
        for q in range(HOURS * PER_HOUR)
    )  # fmt: skip
    queue = f"e2e-fold-kill-{os.getpid()}-{secrets.token_hex(3)}"
    hours = DeviceStatusHour.objects.values("hour").distinct()

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV) as first:
        fold_status_history.apply_async(queue=queue)
        wait_for(lambda: hours.count() >= 2, timeout_s=60, what="the fold to start", every_s=0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

    left_off = hours.count()
    assert 0 < left_off < HOURS, "the worker was killed after the fold finished: no test"

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV):
        fold_status_history.apply_async(queue=queue)  # the next run
        wait_for(lambda: hours.count() >= HOURS, timeout_s=180, what="the next fold", every_s=0.2)

    by_the_job = folded()
    hours_folded = sorted({hour for _device, hour in by_the_job})
    assert hours_folded[:HOURS] == [first_hour + timedelta(hours=h) for h in range(HOURS)]
    DeviceStatusHour.objects.all().delete()
    for hour in hours_folded:
        fold_hour(hour)
    assert by_the_job == folded()  # each hour once, as a fold from scratch makes it
