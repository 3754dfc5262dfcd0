"""Inventory's Celery tasks: thin wrappers over services, safe to run twice, acknowledged late."""

from celery import shared_task

from inventory import services
from inventory.services.import_jobs import run_material_import as run_import_job


@shared_task(name="inventory.forecast_bins", acks_late=True)
def forecast_bins() -> dict:
    """Days to empty for every bin reported since the last run, and the refills nobody reported."""
    return services.forecast_bins()


@shared_task(name="inventory.book_consumption", acks_late=True)
def book_consumption() -> dict:
    """The consumption ledger for the orders received since the last run, then each bin's use by hour
    and variance where they are due."""
    return {**services.book_consumption(), **services.profile_bins()}


@shared_task(name="inventory.run_material_import", acks_late=True)
def run_material_import(job_id: int) -> int | None:
    """Preview or import a stored material sheet (its TaskJob); the rows it reported, None if it did
    nothing."""
    job = run_import_job(job_id)
    return job.result_rows if job else None
