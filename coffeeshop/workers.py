"""Whether Celery workers answer and beat ticks, for /api/v1/health, on every broker (Redis or the
embedded file-system one, which has no broadcast to ping workers with).

A worker process records its pulse when it starts a task, at most every PULSE_EVERY_S (before the
task runs, so a caller that waited for the result sees the pulse); the periodic
jobs (the shortest runs every 15 s) keep it fresh. Beat's last tick is the latest `last_run_at` that
django-celery-beat writes when it sends a periodic task.
"""

import os
import socket
import time
from datetime import timedelta

from celery.signals import task_prerun
from django.db import DatabaseError
from django.db.models import Max
from django.utils import timezone

PULSE_EVERY_S = 10
# A worker or beat quiet for longer than this is not answering (a few periods of the 15 s jobs).
SILENT_AFTER = timedelta(seconds=90)
FORGOTTEN_AFTER = timedelta(days=1)

_last_pulse = 0.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@task_prerun.connect
def record_pulse(**_kwargs) -> None:
    global _last_pulse
    if time.monotonic() - _last_pulse < PULSE_EVERY_S:
        return
    from coffeeshop.models import WorkerPulse

    now = timezone.now()
    try:
        WorkerPulse.objects.update_or_create(worker=worker_name(), defaults={"seen_at": now})
        WorkerPulse.objects.filter(seen_at__lt=now - FORGOTTEN_AFTER).delete()  # processes long gone
    except DatabaseError:
        return  # the next task tries again; a pulse must never fail a task
    _last_pulse = time.monotonic()


def celery_health(now=None) -> dict:
    from django_celery_beat.models import PeriodicTask

    from coffeeshop.models import WorkerPulse

    now = now or timezone.now()
    recent = WorkerPulse.objects.filter(seen_at__gte=now - SILENT_AFTER).order_by("worker")
    answering = list(recent.values_list("worker", flat=True))
    last_seen = WorkerPulse.objects.aggregate(at=Max("seen_at"))["at"]
    last_tick = PeriodicTask.objects.filter(enabled=True).aggregate(at=Max("last_run_at"))["at"]
    return {
        "workers": {"ok": bool(answering), "answering": answering, "last_seen_at": last_seen},
        "beat": {"ok": last_tick is not None and now - last_tick <= SILENT_AFTER, "last_tick_at": last_tick},
    }
