"""/api/v1/health says whether Celery workers answer and when beat last ticked: a real worker process
shows up once it has run a task, and a SIGKILLed one stops answering."""

import os
import secrets
import signal
import socket
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from coffeeshop import workers
from coffeeshop.models import WorkerPulse
from tests.e2e.conftest import celery_worker
from tests.e2e.test_worker_killed import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def celery_of_health() -> dict:
    reply = APIClient().get("/api/v1/health")
    assert reply.status_code == 200, reply.content
    return reply.json()["data"]["celery"]


def test_a_real_worker_answers_in_health_until_it_is_killed(django_db_blocker, tmp_path):
    queue = f"health-{secrets.token_hex(4)}"
    assert celery_of_health()["workers"]["ok"] is False  # nothing has run a task yet

    with celery_worker(queue, django_db_blocker, tmp_path) as worker:
        name = f"{socket.gethostname()}:{worker.pid}"
        wait_for(lambda: name in celery_of_health()["workers"]["answering"], timeout_s=10, what="the pulse")
        assert celery_of_health()["workers"]["ok"] is True
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    WorkerPulse.objects.update(seen_at=timezone.now() - workers.SILENT_AFTER - timedelta(seconds=1))
    gone = celery_of_health()["workers"]
    assert (gone["ok"], gone["answering"]) == (False, []) and gone["last_seen_at"] is not None


def test_beat_ticks_are_read_from_the_schedules_it_sends():
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name="probe", task="operations.sweep_commands", interval=every_minute)

    assert celery_of_health()["beat"]["ok"] is False
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=timezone.now())
    assert celery_of_health()["beat"]["ok"] is True
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=timezone.now() - timedelta(minutes=5))
    assert celery_of_health()["beat"]["ok"] is False
