"""SIGTERM to a Celery worker (a warm shutdown) while it runs jobs: it finishes the jobs it is running and
exits 0, and takes no new one; a job still queued waits in Redis for the next worker, which does it
exactly once (acks_late: a job's message is acknowledged only once it is done). Real worker processes
with the prefork pool production runs, real Redis."""

import os
import secrets
import signal

import pytest
from django.db.models import Count
from django.utils import timezone

from accounts.models import Role
from devices.models import Device
from operations.models import RemoteCommand, TaskJob
from operations.services import commands
from operations.tasks import dispatch_command_batch
from tests.e2e.conftest import celery_worker
from tests.e2e.test_worker_killed import wait_for
from tests.factories import MerchantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

MACHINES = 2000
# Small chunks make each batch report progress often and run long enough to be caught midway.
WORKER_ENV = {"COMMAND_BATCH_CHUNK": "5"}
CONCURRENCY = 2  # as the Procfile's worker: two jobs at once, and the third waits in the queue


def start_batches(count: int, queue: str) -> list[TaskJob]:
    jobs = []
    for n in range(count):
        merchant = MerchantFactory(name=f"Warm shutdown {n}")
        ops = UserFactory(role=Role.OPS, merchants=[merchant])
        Device.objects.bulk_create(
            Device(merchant=merchant, serial=f"WARM{n}-{i:05d}", model="CM-2000", firmware="1.4.2")
            for i in range(MACHINES)
        )
        batch = commands.start_batch(
            Device.objects.filter(merchant=merchant),
            "lock",
            {"reason": "warm shutdown test"},
            user=ops,
            target={"filter": {"merchant": merchant.pk}},
            enqueue=lambda job_id: dispatch_command_batch.apply_async([job_id], queue=queue),
        )
        jobs.append(batch.job)
    return jobs


def jobs_now(jobs) -> list[TaskJob]:
    return list(TaskJob.objects.filter(pk__in=[job.pk for job in jobs]).order_by("pk"))


def test_a_warm_shutdown_finishes_the_running_jobs_and_leaves_the_queued_one_to_the_next_worker(
    django_db_blocker, tmp_path
):
    queue = f"e2e-warm-{os.getpid()}-{secrets.token_hex(3)}"
    with celery_worker(queue, django_db_blocker, tmp_path, concurrency=CONCURRENCY, **WORKER_ENV) as first:
        jobs = start_batches(CONCURRENCY + 1, queue)

        def two_in_progress_or_one_done() -> bool:
            now = jobs_now(jobs)
            return any(job.is_finished for job in now) or sum(job.progress > 0 for job in now) == CONCURRENCY

        wait_for(two_in_progress_or_one_done, timeout_s=120, what="two jobs to be under way", every_s=0.05)
        signalled_at = timezone.now()
        os.kill(first.pid, signal.SIGTERM)
        before = jobs_now(jobs)
        returncode = first.wait(timeout=300)

    if any(job.is_finished for job in before):
        pytest.skip(reason="a job finished before the worker was signalled: nothing was running to finish")
    running = [job for job in before if job.progress > 0]
    (queued,) = [job for job in before if job.progress == 0]
    assert returncode == 0, (tmp_path / f"celery-{queue}.log").read_text()[-3000:]
    for job in jobs_now(running):
        assert job.status == TaskJob.Status.SUCCEEDED and job.attempts == 1
        assert job.finished_at > signalled_at and job.result_rows == MACHINES
    queued.refresh_from_db()
    assert queued.status == TaskJob.Status.PENDING and queued.attempts == 0
    assert not RemoteCommand.objects.filter(batch__job=queued).exists()

    with celery_worker(queue, django_db_blocker, tmp_path, concurrency=CONCURRENCY, **WORKER_ENV):
        wait_for(
            lambda: TaskJob.objects.get(pk=queued.pk).is_finished,
            timeout_s=300,
            what="the queued job",
            every_s=0.2,
        )

    for job in jobs_now(jobs):
        assert job.status == TaskJob.Status.SUCCEEDED and job.attempts == 1, job
        assert job.result_rows == MACHINES
    sent = RemoteCommand.objects.filter(batch__job__in=jobs)
    assert sent.count() == MACHINES * len(jobs)
    assert not sent.values("device_id").annotate(n=Count("pk")).filter(n__gt=1).exists()
