"""A material sheet too large for one request, imported by a background job (a TaskJob).

The uploaded file is saved through Django's default storage and the job's parameters name it, with
the merchant it goes to (chosen at upload, as for the import in a request). A job either previews the
sheet (the dry run: every row new, updated, unchanged or in error) or imports it; a preview without
errors is confirmed by a second job on the same file. The rows go through the same `import_materials`
as a request's import, so the rules are the same: all or nothing, rows matched by code only within the
merchant. Each job writes its per-row report (JSON) to the storage too, and keeps its counts.

Surviving a dead worker: the job is re-run from its stored file by the reclaim (operations.services.jobs).
A preview writes nothing, so running it again is harmless. An import writes every row and marks its job
imported in one transaction: a worker killed before the commit leaves nothing (the next run imports the
whole file), one killed after it leaves the mark (the next run only says it is done). The import's
progress, which is also the job's sign of life, is reported from a thread on its own database connection,
since the import's transaction must not hold it back.
"""

import json
import logging
import threading
import uuid
from collections import Counter
from contextlib import contextmanager

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.utils.translation import gettext as _

from accounts.models import Merchant
from accounts.tenancy import can_access_merchant
from audit.context import acting_for, who_is_acting
from coffeeshop.exceptions import Conflict, DomainError, Forbidden
from inventory.services.catalogue import import_materials, read_sheet
from operations.models import TaskJob
from operations.services import JobSuperseded, claim_job, create_job, finish_job, report_progress
from operations.services.job_files import ensure_files_kept, ensure_preview_kept

logger = logging.getLogger(__name__)
STORAGE_DIR = "material-imports"  # one of operations.services.job_files.JOB_FILE_DIRS
STATUSES = ("new", "updated", "unchanged", "error")


class ImportCanceled(Exception):
    """Someone canceled the job while it ran: the import stops and writes nothing."""


def import_is_large(rows: int) -> bool:
    """Whether a sheet of `rows` rows is imported in the background (MATERIAL_IMPORT_SYNC_MAX_ROWS)."""
    return rows > settings.MATERIAL_IMPORT_SYNC_MAX_ROWS


# --- Starting and confirming -------------------------------------------------------------------------


@transaction.atomic
def start_material_import(
    *, merchant: Merchant, user, content: bytes, file_name: str, dry_run: bool, enqueue, dataset=None
) -> TaskJob:
    """Store the sheet and record the job that previews (`dry_run`) or imports it, queued once this
    transaction commits (`enqueue(job_id)`; a no-op enqueue leaves it to the caller to run it). A file
    that is no material sheet is refused at once (Invalid naming `file`), before any job; `dataset` is
    the sheet as `read_sheet` read it, when the caller has read it already."""
    rows = len(dataset if dataset is not None else read_sheet(content))
    extension = "xlsx" if file_name.lower().endswith(".xlsx") else "csv"
    stored = default_storage.save(f"{STORAGE_DIR}/{uuid.uuid4().hex}.{extension}", ContentFile(content))
    params = {
        "merchant": merchant.pk,
        "merchant_name": merchant.name,
        "file": stored,
        "file_name": file_name[:200],
        "rows": rows,
        "dry_run": dry_run,
        "source": who_is_acting()["source"],  # the import's audit rows say it came through the admin or API
    }
    return create_job(kind=TaskJob.Kind.MATERIAL_IMPORT, user=user, params=params, enqueue=enqueue)


@transaction.atomic
def confirm_material_import(preview: TaskJob, *, user, enqueue) -> TaskJob:
    """The job that imports what `preview` showed, from the same stored file. Confirming twice gives
    the same job (one import per preview). A preview still running, with rows in error, or that did
    not succeed is a Conflict."""
    preview = TaskJob.objects.select_for_update().get(pk=preview.pk)
    params = preview.params
    if preview.kind != TaskJob.Kind.MATERIAL_IMPORT or not params.get("dry_run"):
        raise Conflict(_("Only the preview of a material import can be confirmed."))
    if not can_access_merchant(user, params["merchant"]):
        raise Forbidden(_("This import is for a merchant that is not yours."))
    if params.get("confirm_job"):
        return TaskJob.objects.get(pk=params["confirm_job"])
    ensure_preview_kept(preview)  # under the preview's row lock, which the files' deletion takes too
    if preview.status != TaskJob.Status.SUCCEEDED:
        raise Conflict(_("The preview is not ready: confirm it once it has finished."))
    if params.get("counts", {}).get("error"):
        raise Conflict(_("The file has rows in error; fix them and upload it again."))
    job = create_job(
        kind=TaskJob.Kind.MATERIAL_IMPORT,
        user=user,
        params={
            **{key: params[key] for key in ("merchant", "merchant_name", "file", "file_name", "rows")},
            "source": who_is_acting()["source"],
            "dry_run": False,
            "preview": preview.pk,
        },
        enqueue=enqueue,
    )
    preview.params = {**params, "confirm_job": job.pk}
    preview.save(update_fields=["params"])
    return job


# --- Running ----------------------------------------------------------------------------------------


def run_material_import(job_id: int, *, beat: bool = True) -> TaskJob | None:
    """Run the preview or the import a job was made for; None when the job was not this run's to do
    (running elsewhere, finished, canceled, or taken over meanwhile).

    `beat=False` runs it without the progress thread: for a small sheet imported within a request,
    whose job is not committed yet (a thread's own connection could not see it)."""
    job = claim_job(job_id)
    if job is None:
        return None
    try:
        merchant = Merchant.objects.get(pk=job.params["merchant"])
        with default_storage.open(job.params["file"], "rb") as stored:
            dataset = read_sheet(stored.read())
        with (
            _progress(job, len(dataset), enabled=beat) as on_row,
            acting_for(job.created_by, job.params["source"]),
        ):
            if job.params["dry_run"]:
                report = _preview(merchant, dataset, on_row)
                _keep_report(job, _with_values(report, dataset), imported=False)
            else:
                report = _import_once(job, merchant, dataset, on_row)
    except JobSuperseded:
        return None  # another worker took the job over after this one fell silent; it finishes it
    except ImportCanceled:
        return finish_job(job, TaskJob.Status.CANCELED)
    except DomainError as error:  # the stored file is no sheet (it was one at upload)
        return finish_job(job, TaskJob.Status.FAILED, error=error.message)
    except Exception as error:
        finish_job(job, TaskJob.Status.FAILED, error=str(error))
        raise  # the worker logs it; the job's page says the import failed
    if report is None:  # an earlier run imported the file and died before it could say so
        job.refresh_from_db(fields=["params", "result_rows"])
        return finish_job(job, TaskJob.Status.SUCCEEDED)
    counts = job.params["counts"]
    if not job.params["dry_run"] and counts.get("error"):
        message = _("The file has rows in error; nothing was imported.")
        return finish_job(job, TaskJob.Status.FAILED, error=message, rows=len(report))
    return finish_job(job, TaskJob.Status.SUCCEEDED, rows=len(report))


def _preview(merchant: Merchant, dataset, on_row) -> list[dict]:
    try:
        return import_materials(merchant, dataset, dry_run=True, on_row=on_row)
    except DomainError as error:
        if "all_rows" not in error.details:
            raise
        return error.details["all_rows"]


def _import_once(job: TaskJob, merchant: Merchant, dataset, on_row) -> list[dict] | None:
    """The import and the job's mark that it is done, in one transaction; None when the mark was there
    already. Rows in error roll the import back (nothing written); the report says which."""
    if job.params.get("imported"):
        return None
    try:
        with transaction.atomic():
            report = import_materials(merchant, dataset, dry_run=False, on_row=on_row)
            _keep_report(job, _with_values(report, dataset), imported=True)
            return report
    except DomainError as error:
        if "all_rows" not in error.details:
            raise
        report = error.details["all_rows"]
        _keep_report(job, _with_values(report, dataset), imported=False)
        return report


def _with_values(report: list[dict], dataset) -> list[dict]:
    """Each reported row with the cells it was read from, as text (the preview shows them)."""
    headers = dataset.headers
    return [
        {**row, "values": {h: "" if v is None else str(v) for h, v in zip(headers, cells, strict=False)}}
        for row, cells in zip(report, dataset, strict=True)
    ]


def _keep_report(job: TaskJob, report: list[dict], *, imported: bool) -> None:
    """Write the per-row report to the storage and its name and counts to the job, only if the job is
    still this run's (inside the import's transaction, this is also the mark that it imported)."""
    name = f"{STORAGE_DIR}/report-{job.pk}.json"
    if default_storage.exists(name):
        default_storage.delete(name)
    stored = default_storage.save(name, ContentFile(json.dumps(report, ensure_ascii=False).encode()))
    counts = Counter(row["status"] for row in report)
    params = {**job.params, "report": stored, "counts": {status: counts[status] for status in STATUSES}}
    if imported:
        params["imported"] = True
    mine = TaskJob.objects.filter(pk=job.pk, status=TaskJob.Status.RUNNING, attempts=job.attempts)
    if not mine.update(params=params, result_rows=len(report)):
        raise JobSuperseded(job.pk)
    job.params, job.result_rows = params, len(report)


@contextmanager
def _progress(job: TaskJob, total: int, *, enabled: bool):
    """Yield the callback the import calls after each row. While the import runs, a thread reports how
    far it got every MATERIAL_IMPORT_BEAT_S seconds (on PostgreSQL: SQLite has one writer, which is the
    import's transaction, so there the job shows its progress only when it ends)."""
    state = {"done": 0, "stop": None}
    stopped = threading.Event()

    def on_row():
        state["done"] += 1
        if state["stop"] is not None:
            raise state["stop"]

    def beat():
        try:
            while not stopped.wait(settings.MATERIAL_IMPORT_BEAT_S):
                try:
                    if not report_progress(job, state["done"] * 99 // max(total, 1)):
                        state["stop"] = ImportCanceled()
                except JobSuperseded as superseded:
                    state["stop"] = superseded
                    return
                except DatabaseError:
                    logger.warning("material import job %s: progress not saved", job.pk, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = None
    if enabled and connection.vendor != "sqlite":
        thread = threading.Thread(target=beat, name=f"import-job-{job.pk}", daemon=True)
        thread.start()
    try:
        yield on_row
    finally:
        stopped.set()
        if thread is not None:
            thread.join()


# --- Reading a job's report -------------------------------------------------------------------------


def import_report(job: TaskJob) -> list[dict] | None:
    """The job's rows ({row, status, errors}), errors and all; None until the job has written them.
    NotFound (reason "expired") once the job's files were deleted."""
    ensure_files_kept(job)
    name = job.params.get("report")
    if not name:
        return None
    with default_storage.open(name, "rb") as stored:
        return json.loads(stored.read())


def rows_in_error_first(report: list[dict]) -> list[dict]:
    return sorted(report, key=lambda row: (row["status"] != "error", row["row"]))
