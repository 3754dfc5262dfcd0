"""CSV export of a filtered order list, of any size, as a background job (TaskJob)."""

import csv
import tempfile

from django.conf import settings
from django.core.files import File
from django.http import QueryDict
from django.utils.translation import gettext as _

from accounts.models import User
from coffeeshop.exceptions import Invalid
from operations.models import TaskJob
from operations.services import JobSuperseded, claim_job, create_job, finish_job, report_progress
from orders.filters import OrderFilter
from orders.selectors import orders_for

COLUMNS = [
    "id",
    "order_id",
    "received_at",
    "machine_time",
    "merchant",
    "location",
    "device",
    "currency",
    "total",
    "refunded_total",
    "payment_method",
    "payment_status",
    "transaction_id",
    "is_test",
    "is_exception",
    "exception_reason",
    "items",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _filtered(user, params: dict):
    order_filter = OrderFilter(QueryDict(mutable=True) | params, queryset=orders_for(user))
    if not order_filter.is_valid():
        raise Invalid(
            _("Invalid filter."), details={"fields": {k: list(v) for k, v in order_filter.errors.items()}}
        )
    return order_filter.qs


def start_orders_export(user, params: dict, enqueue) -> TaskJob:
    """Check the filter now (a bad one is a 400, not a failed job) and queue the export."""
    params = {
        key: str(value) for key, value in params.items() if key in OrderFilter.base_filters or key == "from"
    }
    _filtered(user, params)
    return create_job(kind=TaskJob.Kind.ORDERS_EXPORT, user=user, params=params, enqueue=enqueue)


def spreadsheet_text(value) -> str:
    """Machine-supplied text must not run as a spreadsheet formula when the CSV is opened."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _row(order) -> list[str]:
    items = "; ".join(f"{item.qty}× {item.name}" for item in order.items.all())
    return [
        spreadsheet_text(v)
        for v in (
            order.pk,
            order.machine_order_id,
            order.received_at.isoformat(),
            order.device_created_at.isoformat(),
            order.merchant.name,
            order.location.name if order.location else "",
            order.device.serial,
            order.currency,
            order.total,
            order.refunded_total,
            order.payment_method,
            order.payment_status,
            order.transaction_id,
            order.is_test,
            order.is_exception,
            order.exception_reason,
            items,
        )
    ]


def run_orders_export(job_id: int) -> TaskJob | None:
    """Write the CSV of the job's filter, as its creator may see it. Safe to run twice."""
    job = claim_job(job_id)
    if job is None:
        return None
    user = User.objects.get(pk=job.created_by_id)
    orders = _filtered(user, job.params).prefetch_related("items").order_by("-received_at", "-pk")
    total = orders.count()
    # Streamed through a temporary file: an export of a million orders must not sit in memory.
    with tempfile.TemporaryFile("w+b") as spool:
        text = open(spool.fileno(), "w", encoding="utf-8-sig", newline="", closefd=False)  # noqa: SIM115
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        written = 0
        chunk = settings.ORDERS_EXPORT_CHUNK
        for order in orders.iterator(chunk_size=chunk):
            writer.writerow(_row(order))
            written += 1
            if written % chunk == 0:
                try:
                    went_on = report_progress(job, int(written * 99 / max(total, 1)))
                except JobSuperseded:
                    return None  # another worker took over after this one fell silent
                if not went_on:
                    return finish_job(job, TaskJob.Status.CANCELED, rows=written)
        text.close()
        spool.seek(0)
        job.result_file.save(f"orders-{job.pk}.csv", File(spool), save=False)
    return finish_job(job, TaskJob.Status.SUCCEEDED, rows=written)
