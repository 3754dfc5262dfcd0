"""Background jobs: created in a request, run by a Celery worker, watched live, cancellable, and never
lost with a worker.

A job is claimed with a conditional UPDATE (pending → running), so a task delivered twice (late
acknowledgement after a worker died) runs the job once. The running worker beats (`beat_at`) with
every progress report; `reclaim_stale_jobs` (a periodic task) gives a job whose worker fell silent
back to the workers, and fails it visibly after `JOB_MAX_ATTEMPTS` starts. Each job resumes where the
last run stopped without doing anything twice (the batch skips machines that have their command, an
export writes its file again from the start). A run that another worker took over stops at its next
report (`JobSuperseded`).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.tenancy import merchant_ids_for
from audit import services as audit
from coffeeshop.live import broadcast_to_user
from operations import dispatch
from operations.models import TaskJob

logger = logging.getLogger(__name__)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def job_payload(job: TaskJob) -> dict:
    return {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "result_rows": job.result_rows,
        "error": job.error,
        "download_url": download_url(job),
        "files_deleted_at": job.files_deleted_at.isoformat() if job.files_deleted_at else None,
    }


def download_url(job: TaskJob) -> str | None:
    """Where a finished job's file downloads; None until it succeeded, for jobs that make no file, and
    once the file was deleted (operations.services.job_files)."""
    if job.status != TaskJob.Status.SUCCEEDED or not job.result_file or job.files_deleted_at:
        return None
    return f"/api/v1/jobs/{job.pk}/download"


def download_content_type(job: TaskJob) -> str:
    """The job file's type: an XLSX export downloads as a workbook, every other file is CSV."""
    return XLSX_TYPE if job.result_file.name.endswith(".xlsx") else "text/csv"


def create_job(*, kind: str, user, params: dict, enqueue) -> TaskJob:
    """Record the job and queue it once the transaction commits (`enqueue(job_id)`)."""
    job = TaskJob.objects.create(kind=kind, created_by=user, params=params)
    transaction.on_commit(lambda: enqueue(job.pk))
    audit.record("job.created", job, merchant_id=_merchant_of(user), changes={"kind": kind, "params": params})
    return job


def _merchant_of(user) -> int | None:
    """Whose audit trail a job's rows belong to: its creator's merchant when they belong to exactly one
    (so that merchant's Admins see it); platform staff's jobs are the platform's."""
    merchants = merchant_ids_for(user) if user is not None else None
    return next(iter(merchants)) if merchants is not None and len(merchants) == 1 else None


class JobSuperseded(Exception):
    """The worker fell silent for so long that another worker took the job over: this run must stop."""


def claim_job(job_id: int) -> TaskJob | None:
    """Move a pending job to running and count the start; None when it is running elsewhere, finished
    or was canceled."""
    now = timezone.now()
    claimed = TaskJob.objects.filter(pk=job_id, status=TaskJob.Status.PENDING).update(
        status=TaskJob.Status.RUNNING, started_at=now, beat_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    job = TaskJob.objects.get(pk=job_id)
    logger.info(
        "Job %s (%s) started, attempt %s", job.pk, job.kind, job.attempts,
        extra={"job_id": job.pk, "job_kind": job.kind, "attempt": job.attempts},
    )  # fmt: skip
    if job.cancel_requested:
        finish_job(job, TaskJob.Status.CANCELED)
        return None
    return job


def report_progress(job: TaskJob, progress: int) -> bool:
    """Save progress (0–100), beat and push it; returns False when someone asked to cancel the job.
    Raises `JobSuperseded` when another worker has taken the job over meanwhile."""
    job.progress = max(0, min(100, progress))
    mine = TaskJob.objects.filter(pk=job.pk, status=TaskJob.Status.RUNNING, attempts=job.attempts)
    if not mine.update(progress=job.progress, beat_at=timezone.now()):
        raise JobSuperseded(job.pk)
    broadcast_to_user(job.created_by_id, "job.progress", job_payload(job))
    return not TaskJob.objects.filter(pk=job.pk, cancel_requested=True).exists()


def reclaim_stale_jobs(now: datetime | None = None, *, enqueue=dispatch.queue_job) -> dict[str, list[int]]:
    """Jobs whose worker stopped beating (killed, restarted, lost its database) go back to pending
    and are queued again; one that has been started `JOB_MAX_ATTEMPTS` times fails, saying why. A
    pending job whose task never reached a worker (the broker was down at commit) is queued again.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    requeued, failed = [], []
    with transaction.atomic():
        silent = TaskJob.objects.select_for_update(skip_locked=True).filter(
            Q(status__in=[TaskJob.Status.RUNNING, TaskJob.Status.PENDING], beat_at__lt=stale)
            | Q(status=TaskJob.Status.PENDING, beat_at=None, created_at__lt=stale)
        )
        for job in silent:
            if job.attempts >= settings.JOB_MAX_ATTEMPTS:
                message = (
                    f"The worker running this job stopped {job.attempts} times; it was not started again."
                )
                failed.append(finish_job(job, TaskJob.Status.FAILED, error=message))
            else:
                job.status, job.beat_at = TaskJob.Status.PENDING, now
                job.save(update_fields=["status", "beat_at"])
                requeued.append(job)
    for job in requeued:
        enqueue(job)
    for job in failed:
        audit.record(
            "job.failed", job, merchant_id=_merchant_of(job.created_by), changes={"error": job.error}
        )
    return {"requeued": [job.pk for job in requeued], "failed": [job.pk for job in failed]}


def finish_job(job: TaskJob, status: str, *, error: str = "", rows: int | None = None) -> TaskJob:
    job.status = status
    job.error = error
    job.finished_at = timezone.now()
    if rows is not None:
        job.result_rows = rows
    if status == TaskJob.Status.SUCCEEDED:
        job.progress = 100
    job.save()
    logger.info(
        "Job %s (%s) %s", job.pk, job.kind, status,
        extra={"job_id": job.pk, "job_kind": job.kind, "job_status": status, "rows": job.result_rows},
    )  # fmt: skip
    broadcast_to_user(job.created_by_id, "job.progress", job_payload(job))
    return job


def cancel_job(job: TaskJob) -> TaskJob:
    """Ask a job to stop; a pending one stops at once, a running one at its next progress report."""
    TaskJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    updated = TaskJob.objects.filter(pk=job.pk, status=TaskJob.Status.PENDING).update(
        status=TaskJob.Status.CANCELED, finished_at=timezone.now()
    )
    job.refresh_from_db()
    audit.record(
        "job.canceled", job, merchant_id=_merchant_of(job.created_by), changes={"status": job.status}
    )
    if updated:
        broadcast_to_user(job.created_by_id, "job.progress", job_payload(job))
    return job
