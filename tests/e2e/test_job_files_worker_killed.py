"""The deletion of expired job files whose Celery worker is SIGKILLed midway: no job is marked while its
file remains, and the next run deletes and marks the rest. Real worker processes, real Redis."""

import os
import secrets
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from operations.models import TaskJob
from operations.tasks import delete_expired_job_files
from tests.e2e.conftest import celery_worker
from tests.e2e.test_worker_killed import wait_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = 6_000
WORKER_ENV = {"JOB_FILES_DELETE_BATCH": "10"}


def test_a_deletion_whose_worker_is_killed_marks_no_job_with_a_file_left_and_is_finished_next_run(
    django_db_blocker, tmp_path
):
    media = tmp_path / "media"  # the workers' storage (COFFEESHOP_DATA_DIR/media)
    (media / "exports").mkdir(parents=True)
    user = UserFactory()
    finished = timezone.now() - timedelta(days=30)
    jobs = TaskJob.objects.bulk_create(
        TaskJob(
            kind=TaskJob.Kind.ORDERS_EXPORT, created_by=user, status=TaskJob.Status.SUCCEEDED,
            finished_at=finished, result_file=f"exports/orders-e2e-{n}.csv",
        )
        for n in range(JOBS)
    )  # fmt: skip
    for job in jobs:
        (media / job.result_file.name).write_text("id\n")
    marked = TaskJob.objects.exclude(files_deleted_at=None)
    queue = f"e2e-job-files-kill-{os.getpid()}-{secrets.token_hex(3)}"

    def files_left_of(queryset) -> int:
        return sum(Path(media / name).exists() for name in queryset.values_list("result_file", flat=True))

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV) as first:
        delete_expired_job_files.apply_async(queue=queue)
        wait_for(lambda: marked.count() >= 100, timeout_s=60, what="the deletion to start", every_s=0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

    left_off = marked.count()
    assert 0 < left_off < JOBS, "the worker was killed after the run finished: no test"
    assert files_left_of(marked) == 0, "a job marked deleted whose file still exists"

    with celery_worker(queue, django_db_blocker, tmp_path, **WORKER_ENV):
        delete_expired_job_files.apply_async(queue=queue)  # the next run, as beat sends it
        wait_for(lambda: marked.count() == JOBS, timeout_s=180, what="the next run", every_s=0.2)

    assert files_left_of(TaskJob.objects.all()) == 0
    assert not any((media / "exports").iterdir())
