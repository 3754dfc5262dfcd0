"""A background job's worker SIGKILLed midway and the job finished by another: the two halves of the
worker-killed tests, on real Celery worker processes and real Redis."""

import os
import signal
import time

from operations.models import TaskJob
from operations.services import reclaim_stale_jobs
from tests.e2e.conftest import celery_worker
from tests.e2e.test_worker_killed import wait_for


def killed_midway(start, *, queue: str, django_db_blocker, data_dir, **worker_env) -> TaskJob:
    """`start()` queues a job to `queue` and returns it; its worker is SIGKILLed once the job has
    reported progress. The job as the dead worker left it (still running, or there is no test)."""
    with celery_worker(queue, django_db_blocker, data_dir, **worker_env) as first:
        job = start()
        wait_for(lambda: TaskJob.objects.get(pk=job.pk).progress > 0, timeout_s=60, what="the job to start")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    job.refresh_from_db()
    assert job.status == TaskJob.Status.RUNNING, "the worker was killed after the job finished: no test"
    return job


def finished_by_another_worker(job, task, *, queue: str, django_db_blocker, data_dir, settings, **worker_env):
    """Once `job` has been silent long enough, the reclaim queues `task` for it again and a second
    worker runs it to the end. The job as it finished."""
    # Beat runs the reclaim every minute; here it runs once the job has been silent long enough.
    settings.JOB_STALE_AFTER_S = 1
    time.sleep(1.5)
    requeued = reclaim_stale_jobs(enqueue=lambda stalled: task.apply_async([stalled.pk], queue=queue))
    assert requeued["requeued"] == [job.pk]
    with celery_worker(queue, django_db_blocker, data_dir, **worker_env):
        wait_for(
            lambda: TaskJob.objects.get(pk=job.pk).is_finished, timeout_s=180, what="the job", every_s=0.2
        )
    job.refresh_from_db()
    return job
