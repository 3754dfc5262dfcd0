"""The files background jobs store (an export's CSV, an import's sheet and per-row report) are kept
JOB_FILES_KEEP_DAYS after the job finished, then deleted; the job says so (`files_deleted_at`), and its
page and the API answer "expired" rather than a broken download.

A file is deleted only when every job that reads it has finished that long ago: a material import's
preview and the import that confirms it read the same upload, so a preview's files stay while its
confirmation runs (and for as long after). The confirmation takes the preview's row lock, as this
deletion does, so a preview cannot be confirmed while its files go.

Surviving a killed worker: a batch deletes its jobs' files, then marks them, in the transaction that
holds their row locks. A run killed between the two leaves files gone and jobs unmarked, which the
next run marks (a file already gone is fine); a job is never marked while its files remain.

Files left in the jobs' folders by jobs whose rows are gone (deleted with their user, or written by a
run that died before it could name them) are deleted once older than the keep period, and at least a
day old (a file stored in a transaction that has not committed yet is named by no row).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from coffeeshop.exceptions import Conflict, NotFound
from operations.models import TaskJob

# The folders that hold only job files: the export's (`TaskJob.result_file`) and the material
# import's (inventory.services.import_jobs.STORAGE_DIR). Recipe packages live elsewhere, never here.
JOB_FILE_DIRS = ("exports", "material-imports")
ORPHAN_MIN_AGE = timedelta(days=1)
LOOKUP_CHUNK = 500


def keep_period() -> timedelta:
    return timedelta(days=settings.JOB_FILES_KEEP_DAYS)


def delete_expired_job_files(now: datetime | None = None) -> dict[str, int]:
    """Delete the files of jobs finished more than JOB_FILES_KEEP_DAYS ago, and the orphaned ones.
    Returns how many jobs had their files deleted and how many orphans went."""
    now = now or timezone.now()
    cutoff = now - keep_period()
    expired, after = 0, 0
    while (done := _expire_batch(cutoff, now, after=after)) is not None:
        after, deleted = done
        expired += deleted
    return {"jobs": expired, "orphans": delete_orphaned_job_files(now)}


def _expire_batch(cutoff: datetime, now: datetime, *, after: int) -> tuple[int, int] | None:
    """One batch of jobs past `after` (by id): files deleted, then the jobs marked. Returns the last id
    looked at and how many were marked; None when no job is left."""
    with transaction.atomic():
        batch = list(
            TaskJob.objects.select_for_update(skip_locked=True)
            .filter(
                kind__in=TaskJob.KINDS_WITH_FILES,
                status__in=TaskJob.FINISHED,
                finished_at__lt=cutoff,
                files_deleted_at=None,
                pk__gt=after,
            )
            .filter(~Q(result_file="") | Q(params__has_key="file") | Q(params__has_key="report"))
            .order_by("pk")[: settings.JOB_FILES_DELETE_BATCH]
        )
        if not batch:
            return None
        needed = _files_still_read(
            {name for job in batch for name in job.stored_files}, cutoff, besides=[job.pk for job in batch]
        )
        expiring = [job for job in batch if not needed.intersection(job.stored_files)]
        for job in expiring:
            for name in job.stored_files:
                default_storage.delete(name)  # a file already gone is no error
        TaskJob.objects.filter(pk__in=[job.pk for job in expiring]).update(files_deleted_at=now)
    return batch[-1].pk, len(expiring)


def _jobs_naming(names) -> Q:
    names = list(names)
    return Q(result_file__in=names) | Q(params__file__in=names) | Q(params__report__in=names)


def _files_still_read(names: set[str], cutoff: datetime, *, besides: list[int]) -> set[str]:
    """Which of `names` a job other than `besides` still reads: unfinished, or finished since `cutoff`."""
    if not names:
        return set()
    still_running_or_recent = (
        Q(finished_at=None) | Q(finished_at__gte=cutoff) | ~Q(status__in=TaskJob.FINISHED)
    )
    readers = TaskJob.objects.filter(still_running_or_recent, _jobs_naming(names)).exclude(pk__in=besides)
    return names.intersection(_files_of(readers))


def _files_of(jobs) -> set[str]:
    return {name for job in jobs.only("result_file", "params") for name in job.stored_files}


def delete_orphaned_job_files(now: datetime | None = None) -> int:
    """Delete the files in the jobs' folders that no job names, once older than the keep period (and a
    day). Returns how many went."""
    now = now or timezone.now()
    old_before = now - max(keep_period(), ORPHAN_MIN_AGE)
    deleted = 0
    for folder in JOB_FILE_DIRS:
        try:
            _dirs, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue
        old = [f"{folder}/{name}" for name in files]
        old = [name for name in old if default_storage.get_modified_time(name) < old_before]
        for start in range(0, len(old), LOOKUP_CHUNK):
            chunk = set(old[start : start + LOOKUP_CHUNK])
            for name in chunk - _files_of(TaskJob.objects.filter(_jobs_naming(chunk))):
                default_storage.delete(name)
                deleted += 1
    return deleted


def expired_details(job: TaskJob) -> dict:
    return {"reason": "expired", "files_deleted_at": job.files_deleted_at.isoformat()}


def expired_message() -> str:
    return _("This job's files were deleted: they are kept %(days)d days after the job finished.") % {
        "days": settings.JOB_FILES_KEEP_DAYS
    }


def ensure_files_kept(job: TaskJob) -> None:
    """NotFound (reason "expired") when the job's files were deleted."""
    if job.files_deleted_at is not None:
        raise NotFound(expired_message(), details=expired_details(job))


def open_job_file(job: TaskJob) -> tuple[File, str]:
    """The job's file, open, and the name it downloads as. NotFound until the job succeeded with a
    file, and once the file was deleted (reason "expired")."""
    ensure_files_kept(job)
    if job.status != TaskJob.Status.SUCCEEDED or not job.result_file:
        raise NotFound(_("This job has no file (yet)."))
    try:
        opened = job.result_file.open("rb")
    except FileNotFoundError:
        raise NotFound(_("This job's file is no longer stored."), details={"reason": "missing"}) from None
    return opened, job.result_file.name.rsplit("/", 1)[-1]


def ensure_preview_kept(preview: TaskJob) -> None:
    """A preview whose upload was deleted cannot be confirmed (Conflict, reason "expired")."""
    if preview.files_deleted_at is not None:
        message = _("This preview has expired and its file was deleted; upload the file again.")
        raise Conflict(message, details=expired_details(preview))
