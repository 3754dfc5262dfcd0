"""Periodic jobs of the fleet; their schedules are django-celery-beat entries (see migration 0002)."""

from celery import shared_task

from devices import services


@shared_task(name="devices.mark_silent_devices_offline")
def mark_silent_devices_offline() -> int:
    return len(services.mark_silent_devices_offline())
