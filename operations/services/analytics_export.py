"""An analytics report (sales by a dimension, or uptime per day) written to CSV or XLSX as a background
job (TaskJob), in the same storage as the order exports. Safe to run twice: a run writes the whole file
again from the start."""

import csv
import tempfile
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.files import File
from django.utils.translation import gettext as _
from openpyxl import Workbook

from accounts.models import User
from coffeeshop.exceptions import Invalid
from operations.analytics import DIMENSIONS, sales_by, uptime_per_day
from operations.dashboard import scope_for
from operations.models import TaskJob
from operations.services.jobs import JobSuperseded, claim_job, create_job, finish_job, report_progress
from orders.services.export import spreadsheet_text

REPORTS = ("sales", "uptime")
FORMATS = ("csv", "xlsx")
UPTIME_COLUMNS = ["date", "machine_id", "machine", "uptime_pct"]


def _invalid(name: str, message: str) -> Invalid:
    return Invalid(message, details={"fields": {name: [message]}})


def start_analytics_export(
    user,
    *,
    report: str,
    file_format: str,
    dimension: str | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
    merchant_id: int | None = None,
    location_id: int | None = None,
    enqueue,
) -> TaskJob:
    """Check the report and its filters now (a bad one is a 400, not a failed job) and queue the export.
    The range is fixed when the export starts: "the last seven days" does not move while it waits."""
    if report not in REPORTS:
        raise _invalid("report", _("unknown report"))
    if file_format not in FORMATS:
        raise _invalid("format", _("unknown format"))
    if report == "sales" and dimension not in DIMENSIONS:
        raise _invalid("dimension", _("unknown dimension"))
    scope = scope_for(
        user, first_day=first_day, last_day=last_day, merchant_id=merchant_id, location_id=location_id
    )
    params = {
        "report": report,
        "format": file_format,
        "from": scope.first_day.isoformat(),
        "to": scope.last_day.isoformat(),
    }
    if report == "sales":
        params["dimension"] = dimension
    if merchant_id is not None:
        params["merchant_id"] = merchant_id
    if location_id is not None:
        params["location"] = location_id
    return create_job(kind=TaskJob.Kind.ANALYTICS_EXPORT, user=user, params=params, enqueue=enqueue)


def _scope_of(job: TaskJob):
    """The job's scope as its creator may see it now (one who lost the merchant meanwhile gets nothing)."""
    params = job.params
    return scope_for(
        User.objects.get(pk=job.created_by_id),
        first_day=date.fromisoformat(params["from"]),
        last_day=date.fromisoformat(params["to"]),
        merchant_id=params.get("merchant_id"),
        location_id=params.get("location"),
    )


def report_rows(params: dict, scope) -> tuple[list[str], list[list]]:
    """The report's columns and rows, as they go into the file."""
    if params["report"] == "uptime":
        uptime = uptime_per_day(scope)
        rows = [[r["date"], r["device_id"], r["label"], r["uptime_pct"]] for r in uptime["machines"]]
        rows += [[r["date"], "", "fleet", r["uptime_pct"]] for r in uptime["fleet"]]
        return UPTIME_COLUMNS, rows
    dimension = params["dimension"]
    count = "qty" if dimension == "product" else "orders"
    sales = sales_by(scope, dimension)
    rows = [[r["key"], r["label"], r["currency"], r[count], Decimal(r["amount"])] for r in sales]
    return [dimension, "label", "currency", count, "amount"], rows


class _CsvSheet:
    def __init__(self, spool):
        self.text = open(spool.fileno(), "w", encoding="utf-8-sig", newline="", closefd=False)  # noqa: SIM115
        self.writer = csv.writer(self.text)

    def append(self, row):
        self.writer.writerow([spreadsheet_text(value) for value in row])

    def finish(self):
        self.text.close()


class _XlsxSheet:
    """Numbers stay numbers (a workbook sums them); text is defused like the CSV's."""

    def __init__(self, spool):
        self.spool = spool
        self.book = Workbook(write_only=True)
        self.sheet = self.book.create_sheet()

    def append(self, row):
        self.sheet.append([spreadsheet_text(v) if isinstance(v, str) else v for v in row])

    def finish(self):
        self.book.save(self.spool)


def run_analytics_export(job_id: int) -> TaskJob | None:
    """Write the job's report to its file, reporting progress (the job's heartbeat) every chunk of rows."""
    job = claim_job(job_id)
    if job is None:
        return None
    try:
        columns, rows = report_rows(job.params, _scope_of(job))
    except Invalid as error:
        return finish_job(job, TaskJob.Status.FAILED, error=error.message)
    file_format = job.params["format"]
    chunk = settings.ANALYTICS_EXPORT_CHUNK
    with tempfile.TemporaryFile("w+b") as spool:
        sheet = (_XlsxSheet if file_format == "xlsx" else _CsvSheet)(spool)
        sheet.append(columns)
        for written, row in enumerate(rows, start=1):
            sheet.append(row)
            if written % chunk == 0:
                try:
                    went_on = report_progress(job, 1 + int(written * 98 / len(rows)))
                except JobSuperseded:
                    return None  # another worker took over after this one fell silent
                if not went_on:
                    return finish_job(job, TaskJob.Status.CANCELED, rows=written)
        sheet.finish()
        spool.seek(0)
        name = f"analytics-{job.params['report']}-{job.pk}.{file_format}"
        job.result_file.save(name, File(spool), save=False)
    return finish_job(job, TaskJob.Status.SUCCEEDED, rows=len(rows))
