"""Inventory's Celery tasks: thin wrappers over services, safe to run twice, acknowledged late."""

from celery import shared_task

from inventory import services


@shared_task(name="inventory.forecast_bins", acks_late=True)
def forecast_bins() -> dict:
    """Days to empty for every bin reported since the last run, and the refills nobody reported."""
    return services.forecast_bins()


@shared_task(name="inventory.book_consumption", acks_late=True)
def book_consumption() -> dict:
    """The consumption ledger for the orders received since the last run, then each bin's use by hour
    and variance where they are due."""
    return {**services.book_consumption(), **services.profile_bins()}
