"""A Celery worker SIGKILLed in the middle of a batch loses nothing: the stalled job goes to another
worker, which finishes it without giving any machine its command twice. Real processes, real Redis."""

import os
import secrets
import signal
import time

import pytest
from django.db.models import Count

from accounts.models import Role
from devices.models import Device
from operations.models import CommandBatch, RemoteCommand, TaskJob
from operations.services import commands, reclaim_stale_jobs
from operations.tasks import dispatch_command_batch
from tests.e2e.conftest import celery_worker
from tests.factories import MerchantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

MACHINES = 3000
# Small chunks make the job take long enough to be killed in the middle of it.
WORKER_ENV = {"COMMAND_BATCH_CHUNK": "5"}


def wait_for(condition, *, timeout_s: float, what: str, every_s: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every_s)


def test_a_batch_whose_worker_is_killed_is_finished_by_another_without_duplicates(
    django_db_blocker, tmp_path, settings
):
    merchant = MerchantFactory(name="Killed worker")
    ops = UserFactory(role=Role.OPS, merchants=[merchant])
    Device.objects.bulk_create(
        Device(merchant=merchant, serial=f"KILL-{n:05d}", model="CM-2000", firmware="1.4.2")
        for n in range(MACHINES)
    )
    queue = f"e2e-kill-{os.getpid()}-{secrets.token_hex(3)}"

    def to_this_queue(job_id: int) -> None:
        dispatch_command_batch.apply_async([job_id], queue=queue)

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV) as first:
        batch = commands.start_batch(
            Device.objects.filter(merchant=merchant),
            "lock",
            {"reason": "kill test"},
            user=ops,
            target={"filter": {"merchant": merchant.pk}},
            enqueue=to_this_queue,
        )
        job = batch.job
        wait_for(lambda: TaskJob.objects.get(pk=job.pk).progress > 0, timeout_s=60, what="the job to start")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

    job.refresh_from_db()
    made_before = RemoteCommand.objects.filter(batch=batch).count()
    assert job.status == TaskJob.Status.RUNNING, "the worker was killed after the job finished: no test"
    assert 0 < made_before < MACHINES

    # Beat runs the reclaim every minute; here it runs once the job has been silent long enough.
    settings.JOB_STALE_AFTER_S = 1
    time.sleep(1.5)
    assert reclaim_stale_jobs(enqueue=lambda stalled: to_this_queue(stalled.pk))["requeued"] == [job.pk]

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV):
        wait_for(
            lambda: TaskJob.objects.get(pk=job.pk).is_finished,
            timeout_s=120,
            what="the job to finish",
            every_s=0.2,
        )

    job.refresh_from_db()
    assert job.status == TaskJob.Status.SUCCEEDED and job.attempts == 2
    sent = RemoteCommand.objects.filter(batch=batch)
    assert sent.count() == MACHINES == job.result_rows
    assert not sent.values("device_id").annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert CommandBatch.objects.get(pk=batch.pk).machines == MACHINES
