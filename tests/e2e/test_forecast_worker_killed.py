"""The bin forecast job whose Celery worker is SIGKILLed midway is finished by the next run (as beat
sends it every minute): every bin forecast, every unreported refill booked exactly once. Real worker
processes, real Redis."""

import os
import secrets
import signal

import pytest
from django.db.models import Count
from django.utils import timezone

from devices.models import Device, DeviceBin
from inventory.models import Refill, RefillSource
from inventory.tasks import forecast_bins
from tests.e2e.conftest import celery_worker
from tests.e2e.test_worker_killed import wait_for
from tests.factories import DeviceFactory, MerchantFactory

pytestmark = pytest.mark.django_db(transaction=True)

MACHINES, BINS_EACH = 600, 8
# Small chunks: many transactions, so the kill lands between two of them.
WORKER_ENV = {"BIN_FORECAST_CHUNK": "25"}


def test_a_forecast_whose_worker_is_killed_is_finished_by_the_next_run_booking_each_refill_once(
    django_db_blocker, tmp_path
):
    merchant = MerchantFactory(name="Killed forecast")
    devices = Device.objects.bulk_create(DeviceFactory.build_batch(MACHINES, merchant=merchant))
    last_forecast = timezone.now() - timezone.timedelta(minutes=5)
    # Every third bin was refilled since its last forecast (and nobody said so); the rest drained.
    DeviceBin.objects.bulk_create(
        DeviceBin(
            device=device, index=index, material_code="BEAN-ARABICA", capacity=1000,
            remaining=950 if (n * BINS_EACH + index) % 3 == 0 else 400, level_pct=0,
            forecast_at=last_forecast, forecast_remaining=500,
            drain_since_at=last_forecast, drain_since_remaining=500,
        )
        for n, device in enumerate(devices)
        for index in range(1, BINS_EACH + 1)
    )  # fmt: skip
    refilled = DeviceBin.objects.filter(remaining=950).count()
    total = MACHINES * BINS_EACH
    due = DeviceBin.objects.filter(forecast_at=last_forecast)
    queue = f"e2e-forecast-kill-{os.getpid()}-{secrets.token_hex(3)}"

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV) as first:
        forecast_bins.apply_async(queue=queue)
        wait_for(lambda: due.count() < total, timeout_s=60, what="the forecast to start", every_s=0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

    left = due.count()
    assert 0 < left < total, "the worker was killed after the forecast finished: no test"
    assert Refill.objects.count() < refilled

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV):
        forecast_bins.apply_async(queue=queue)  # the next minute's run
        wait_for(lambda: not due.exists(), timeout_s=180, what="the next forecast", every_s=0.2)
        wait_for(lambda: Refill.objects.count() >= refilled, timeout_s=30, what="the refills")

    assert Refill.objects.count() == refilled
    assert not Refill.objects.values("bin").annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert set(Refill.objects.values_list("source", flat=True)) == {RefillSource.INFERRED}
    assert not DeviceBin.objects.filter(forecast_remaining=None).exists()
