"""With LOG_FORMAT=json a real gunicorn, a real worker and a real beat write only JSON lines, and the
request id of an export asked for over HTTP is on the web's access line and on the worker's lines for
the export it queued: one search for the id finds the whole story."""

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.authtoken.models import Token

from accounts.models import Role
from operations.models import TaskJob
from tests.e2e.conftest import ROOT, celery_env, celery_worker, stop, wsgi_server
from tests.e2e.test_worker_killed import wait_for
from tests.factories import DeviceFactory, MerchantFactory, OrderFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

JSON_LOGS = {"LOG_FORMAT": "json"}
ACCESS = "coffeeshop.access"


def json_lines(path) -> list[dict]:
    """Every line of the log at `path`, each of which must be one JSON object."""
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{path.name}, line {number} is not JSON: {line!r}")
    return lines


def lines_with(path, request_id: str) -> list[dict]:
    return [line for line in json_lines(path) if line.get("request_id") == request_id]


def test_an_exports_request_id_is_on_the_web_access_line_and_the_workers_lines(
    django_db_blocker, tmp_path, tmp_path_factory
):
    if not settings.REDIS_URL:
        pytest.skip(reason="needs REDIS_URL: the worker takes its tasks from Redis, as in production")
    merchant = MerchantFactory(name="Logged export")
    viewer = UserFactory(role=Role.VIEWER, merchants=[merchant])
    OrderFactory.create_batch(3, device=DeviceFactory(merchant=merchant))
    token = Token.objects.create(user=viewer).key
    queue = f"e2e-reqid-{os.getpid()}-{secrets.token_hex(3)}"
    request_id = f"e2e-{secrets.token_hex(8)}"
    worker_log = tmp_path / f"celery-{queue}.log"

    with (
        celery_worker(queue, django_db_blocker, tmp_path, **JSON_LOGS),
        wsgi_server(django_db_blocker, tmp_path_factory, CELERY_TASK_DEFAULT_QUEUE=queue, **JSON_LOGS) as web,
    ):
        reply = httpx.post(
            f"{web.url}/api/v1/orders/export",
            headers={"Authorization": f"Token {token}", "X-Request-ID": request_id},
            timeout=30,
        )
        assert reply.status_code == 202, reply.text
        assert reply.headers["X-Request-ID"] == request_id
        job_id = reply.json()["data"]["id"]
        wait_for(
            lambda: TaskJob.objects.get(pk=job_id).is_finished, timeout_s=90, what="the export", every_s=0.2
        )
        wait_for(
            lambda: any("succeeded in" in line["message"] for line in lines_with(worker_log, request_id)),
            timeout_s=60, what="the worker's line for the finished task", every_s=0.2,
        )  # fmt: skip
        wait_for(
            lambda: any(line["logger"] == ACCESS for line in lines_with(web.log_path, request_id)),
            timeout_s=60, what="the web's access line", every_s=0.2,
        )  # fmt: skip

        assert TaskJob.objects.get(pk=job_id).status == TaskJob.Status.SUCCEEDED

    (access,) = [line for line in lines_with(web.log_path, request_id) if line["logger"] == ACCESS]
    assert (access["method"], access["path"], access["status"]) == ("POST", "/api/v1/orders/export", 202)
    assert (access["user_id"], access["merchant_id"]) == (viewer.pk, merchant.pk)
    worker_said = [line["message"] for line in lines_with(worker_log, request_id)]
    assert any("orders.export_orders" in said and "received" in said for said in worker_said), worker_said
    assert f"Job {job_id} (orders_export) started, attempt 1" in worker_said
    assert f"Job {job_id} (orders_export) succeeded" in worker_said
    assert token not in web.log_path.read_text() + worker_log.read_text()
    # Every line of both logs is JSON, read after both stopped: gunicorn's own (booting workers),
    # Django's and Celery's, its shutdown notice included.
    assert any(line["logger"] == "gunicorn.error" for line in json_lines(web.log_path))
    assert any(line["logger"].startswith("celery") for line in json_lines(worker_log))
    assert any("Warm shutdown" in line["message"] for line in json_lines(worker_log))


def test_a_task_beat_sends_has_one_request_id_in_beat_and_in_the_worker(django_db_blocker, tmp_path):
    """Beat names each task it sends with a new request id, on its own line and the worker's."""
    if not settings.REDIS_URL:
        pytest.skip(reason="needs REDIS_URL: the worker takes its tasks from Redis, as in production")
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="e2e: flush heartbeats every second",
        defaults={"task": "operations.flush_heartbeats", "interval": every_second, "enabled": True},
    )
    queue = f"e2e-beat-{os.getpid()}-{secrets.token_hex(3)}"
    worker_log = tmp_path / f"celery-{queue}.log"
    with (
        celery_worker(queue, django_db_blocker, tmp_path, **JSON_LOGS),
        run_beat(queue, django_db_blocker, tmp_path) as beat_log,
    ):
        found: list[str] = []

        def sent_and_done() -> bool:
            sent = {
                line["request_id"]
                for line in json_lines(beat_log)
                if "Sending due task e2e: flush heartbeats" in line["message"]
            }
            found[:] = [
                line["request_id"]
                for line in json_lines(worker_log)
                if "succeeded in" in line["message"] and line.get("request_id") in sent
            ]
            return bool(found)

        wait_for(sent_and_done, timeout_s=90, what="a task beat sent to succeed", every_s=0.5)

    request_id = found[0]
    assert request_id.startswith("beat-")
    worker_said = [line["message"] for line in lines_with(worker_log, request_id)]
    assert any("operations.flush_heartbeats" in said and "received" in said for said in worker_said)


@contextlib.contextmanager
def run_beat(queue: str, django_db_blocker, tmp_path):
    env = celery_env(django_db_blocker, tmp_path, CELERY_TASK_DEFAULT_QUEUE=queue, **JSON_LOGS)
    beat_log = tmp_path / "beat.log"
    command = [sys.executable, "-m", "celery", "-A", "coffeeshop", "--quiet", "beat", "--loglevel", "INFO"]
    command += ["--pidfile", str(tmp_path / "beat.pid"), "--schedule", str(tmp_path / "beat-schedule")]
    with beat_log.open("w") as log:
        beat = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: any("Starting" in line["message"] for line in json_lines(beat_log)),
            timeout_s=60, what="beat to start", every_s=0.2,
        )  # fmt: skip
        yield beat_log
    finally:
        stop(beat, timeout_s=15)


def test_beat_writes_only_json_lines(django_db_blocker, tmp_path):
    queue = f"e2e-beat-{os.getpid()}-{secrets.token_hex(3)}"  # no worker takes what beat sends here
    with run_beat(queue, django_db_blocker, tmp_path) as beat_log:
        time.sleep(1)  # what beat writes right after it starts must be JSON too

    lines = json_lines(beat_log)
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["logger"] == "celery.beat" for line in lines)
