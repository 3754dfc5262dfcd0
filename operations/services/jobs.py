"""Background jobs: created in a request, run by a Celery worker, watched live, cancellable.

A job is claimed with a conditional UPDATE (pending → running), so a task delivered twice (late
acknowledgement after a worker died) runs the job once; a job still `running` after its worker died is
re-claimable when the delivery comes again.
"""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.tenancy import merchant_ids_for
from audit import services as audit
from coffeeshop.live import broadcast_to_user
from operations.models import TaskJob


def job_payload(job: TaskJob) -> dict:
    return {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "result_rows": job.result_rows,
        "error": job.error,
        "download_url": download_url(job),
    }


def download_url(job: TaskJob) -> str | None:
    """Where a finished job's file downloads; None until it succeeded, and for jobs that make no file."""
    if job.status != TaskJob.Status.SUCCEEDED or not job.result_file:
        return None
    return f"/api/v1/jobs/{job.pk}/download"


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


def claim_job(job_id: int) -> TaskJob | None:
    """Move a pending (or orphaned running) job to running; None when it is finished or was canceled."""
    claimed = (
        TaskJob.objects.filter(pk=job_id)
        .filter(Q(status=TaskJob.Status.PENDING) | Q(status=TaskJob.Status.RUNNING))
        .update(status=TaskJob.Status.RUNNING, started_at=timezone.now(), progress=0)
    )
    if not claimed:
        return None
    job = TaskJob.objects.get(pk=job_id)
    if job.cancel_requested:
        finish_job(job, TaskJob.Status.CANCELED)
        return None
    return job


def report_progress(job: TaskJob, progress: int) -> bool:
    """Save progress (0–100) and push it; returns False when someone asked to cancel the job."""
    job.progress = max(0, min(100, progress))
    TaskJob.objects.filter(pk=job.pk).update(progress=job.progress)
    broadcast_to_user(job.created_by_id, "job.progress", job_payload(job))
    return not TaskJob.objects.filter(pk=job.pk, cancel_requested=True).exists()


def finish_job(job: TaskJob, status: str, *, error: str = "", rows: int | None = None) -> TaskJob:
    job.status = status
    job.error = error
    job.finished_at = timezone.now()
    if rows is not None:
        job.result_rows = rows
    if status == TaskJob.Status.SUCCEEDED:
        job.progress = 100
    job.save()
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
