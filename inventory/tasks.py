"""Inventory's Celery tasks: thin wrappers over services, safe to run twice, acknowledged late."""

from celery import shared_task

from inventory import services


@shared_task(name="inventory.forecast_bins", acks_late=True)
def forecast_bins() -> dict:
    """Days to empty for every bin reported since the last run, and the refills nobody reported."""
    return services.forecast_bins()
