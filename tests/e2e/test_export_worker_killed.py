"""An export whose Celery worker is SIGKILLed midway is finished by another worker: one file with every
order exactly once, none missing. Real worker processes, real Redis."""

import csv
import io
import os
import secrets
import signal
import time

import pytest
from django.utils import timezone

from accounts.models import Role
from operations.models import TaskJob
from operations.services import reclaim_stale_jobs
from orders.models import Order
from orders.services import start_orders_export
from orders.tasks import export_orders
from tests.e2e.conftest import celery_worker
from tests.e2e.test_worker_killed import wait_for
from tests.factories import DeviceFactory, MerchantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = 20_000
# Small chunks make the export report (and beat) often and take long enough to be killed midway.
WORKER_ENV = {"ORDERS_EXPORT_CHUNK": "50"}


def test_an_export_whose_worker_is_killed_is_written_whole_by_another(django_db_blocker, tmp_path, settings):
    merchant = MerchantFactory(name="Killed export")
    viewer = UserFactory(role=Role.VIEWER, merchants=[merchant])
    device = DeviceFactory(merchant=merchant)
    now = timezone.now()
    Order.objects.bulk_create(
        Order(
            merchant=merchant, location=device.location, device=device, machine_order_id=f"EXP-{n:06d}",
            currency="CNY", total="18.00", payment_method="cash", payment_status="paid",
            device_created_at=now, received_at=now, content_hash=f"{n:064x}",
        )
        for n in range(ORDERS)
    )  # fmt: skip
    queue = f"e2e-export-kill-{os.getpid()}-{secrets.token_hex(3)}"

    def to_this_queue(job_id: int) -> None:
        export_orders.apply_async([job_id], queue=queue)

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV) as first:
        job = start_orders_export(viewer, {}, enqueue=to_this_queue)
        wait_for(
            lambda: TaskJob.objects.get(pk=job.pk).progress > 0, timeout_s=60, what="the export to start"
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

    job.refresh_from_db()
    assert job.status == TaskJob.Status.RUNNING, "the worker was killed after the export finished: no test"
    assert 0 < job.progress < 99

    settings.JOB_STALE_AFTER_S = 1
    time.sleep(1.5)
    assert reclaim_stale_jobs(enqueue=lambda stalled: to_this_queue(stalled.pk))["requeued"] == [job.pk]

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV):
        wait_for(
            lambda: TaskJob.objects.get(pk=job.pk).is_finished, timeout_s=180, what="the export", every_s=0.2
        )

    job.refresh_from_db()
    assert job.status == TaskJob.Status.SUCCEEDED and job.attempts == 2
    rows = list(
        csv.DictReader(io.StringIO((tmp_path / "media" / job.result_file.name).read_text("utf-8-sig")))
    )
    order_ids = [row["order_id"] for row in rows]
    assert len(order_ids) == ORDERS == job.result_rows
    assert set(order_ids) == {f"EXP-{n:06d}" for n in range(ORDERS)}
