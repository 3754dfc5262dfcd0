"""Two web processes and two Celery workers behave as one deployment: nothing lives in one process's
memory. gunicorn serves HTTP and daphne /ws/ (and HTTP too), each its own process, as Procfile.prod
runs them; two worker processes take jobs from one queue. A session opened on one web process is
accepted by the other, a machine's heartbeat and alarm sent to gunicorn reach a staff socket on daphne,
a throttle counts both processes' requests, the same order sent to both at once is stored once, and
jobs queued from both web processes run once across the two workers. PostgreSQL and Redis only."""

import contextlib
import functools
import json
import os
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings
from django.db import connection
from websockets.sync.client import connect as websocket

from accounts.models import Role
from devices.services import register_device
from operations.models import Alarm, AlarmType, TaskJob
from orders.models import Order
from orders.tasks import export_orders
from tests.conftest import protocol_order
from tests.e2e.conftest import asgi_server as daphne_server
from tests.e2e.conftest import celery_worker, wsgi_server
from tests.e2e.test_worker_killed import wait_for
from tests.factories import UserFactory, merchant_with_catalogue

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "Tw0-Processes!"
REGISTRATIONS_PER_HOUR = 4
EXPORTS_PER_WEB_PROCESS = 2
ORDERS = 3


@pytest.fixture(autouse=True)
def _postgres_and_redis_only(db):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip(reason="the production shape: several processes share PostgreSQL and Redis")


@pytest.fixture
def deployment(django_db_blocker, tmp_path_factory, tmp_path):
    """gunicorn and daphne on two ports, and two workers taking from the queue both web processes
    queue to: (gunicorn, daphne, [worker logs]). The workers share one media folder, as a deployment's
    workers share a disk."""
    shared_queue = f"e2e-xproc-{os.getpid()}-{secrets.token_hex(3)}"
    web_env = {
        "CELERY_TASK_DEFAULT_QUEUE": shared_queue,
        "THROTTLE_REGISTER": f"{REGISTRATIONS_PER_HOUR}/hour",  # a sliding window: no edge mid-test
        "MAX_QUEUE_WAIT_MS": "0",  # no shedding on a loaded machine (that is test_overload.py's)
    }
    with contextlib.ExitStack() as stack:
        gunicorn = stack.enter_context(wsgi_server(django_db_blocker, tmp_path_factory, **web_env))
        daphne = stack.enter_context(daphne_server(django_db_blocker, tmp_path_factory, **web_env))
        for own_queue in (f"{shared_queue}-a", f"{shared_queue}-b"):
            worker = celery_worker(own_queue, django_db_blocker, tmp_path, shared_queue=shared_queue)
            stack.enter_context(worker)
        yield gunicorn, daphne, shared_queue, sorted(tmp_path.glob("celery-*.log"))


def log_in(server, email: str) -> tuple[str, str]:
    """Sign in through the admin's login form of `server`: (sessionid, csrftoken)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/admin/login/").raise_for_status()
        csrf = client.cookies["csrftoken"]
        reply = client.post(
            "/admin/login/?next=/admin/",
            data={"username": email, "password": PASSWORD, "csrfmiddlewaretoken": csrf},
        )
        assert reply.status_code == 302 and reply.headers["location"] == "/admin/", reply.text[:500]
        return client.cookies["sessionid"], client.cookies["csrftoken"]


def staff_client(server, session: tuple[str, str]) -> httpx.Client:
    sessionid, csrf = session
    return httpx.Client(
        base_url=server.url,
        cookies={"sessionid": sessionid, "csrftoken": csrf},
        headers={"X-CSRFToken": csrf},
        timeout=30,
    )


def next_message(ws, wanted, *, timeout_s: float = 30) -> dict:
    """The first push on `ws` for which `wanted(message)` holds, skipping others."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            break
        if wanted(message):
            return message
    pytest.fail("the staff socket did not hear the expected push")


def at_once(calls):
    """Run every call at the same moment, each in its own thread; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_web_processes_and_two_workers_behave_as_one(deployment):
    gunicorn, daphne, shared_queue, worker_logs = deployment
    merchant = merchant_with_catalogue(name="Two Processes Coffee")
    ops = UserFactory(email="ops@xproc.example.com", role=Role.OPS, merchants=[merchant], password=PASSWORD)
    machine = register_device(
        serial="XPROC-1", model="CM-2000", firmware="1.4.2", provisioning_secret=merchant.provisioning_secret
    )
    machine_auth = {"Authorization": f"Device {machine.token}"}
    device_id = machine.device.pk

    # A session opened on one web process is accepted by the other, and signing out ends it on both.
    session = log_in(gunicorn, ops.email)
    with staff_client(daphne, session) as on_daphne:
        page = on_daphne.get("/admin/")
        assert page.status_code == 200 and 'data-live="fleet"' in page.text, "daphne did not know the session"
    second_session = log_in(daphne, ops.email)
    with staff_client(gunicorn, second_session) as on_gunicorn:
        assert on_gunicorn.get("/admin/").status_code == 200
        on_gunicorn.post("/admin/logout/").raise_for_status()
    with staff_client(daphne, second_session) as gone:
        assert gone.get("/admin/").status_code == 302, "a session signed out on gunicorn lived on in daphne"

    # The same order sent to both web processes at once is stored once.
    with (
        httpx.Client(base_url=gunicorn.url, headers=machine_auth, timeout=30) as to_gunicorn,
        httpx.Client(base_url=daphne.url, headers=machine_auth, timeout=30) as to_daphne,
    ):
        both, url = (to_gunicorn, to_daphne), f"/api/v1/devices/{device_id}/orders/create"
        for n in range(ORDERS):
            body = protocol_order(order_id=f"XPROC-{n}")
            replies = at_once([functools.partial(client.post, url, json=body) for client in both])
            assert sorted(r.status_code for r in replies) == [200, 201], [r.text for r in replies]
            assert sorted(r.json()["data"]["result"] for r in replies) == ["accepted", "duplicate"]
    stored = Order.objects.filter(device_id=device_id).values_list("machine_order_id", flat=True)
    assert sorted(stored) == [f"XPROC-{n}" for n in range(ORDERS)]

    # A heartbeat and an alarm sent to gunicorn reach a staff socket on daphne.
    ws_headers = {"Origin": gunicorn.url, "Cookie": f"sessionid={session[0]}"}
    with websocket(f"{daphne.ws_url}/ws/live/", additional_headers=ws_headers, open_timeout=30) as ws:
        assert next_message(ws, lambda m: m["type"] == "hello")["merchant_ids"] == [merchant.pk]
        with httpx.Client(base_url=gunicorn.url, headers=machine_auth, timeout=30) as as_machine:
            as_machine.post(f"/api/v1/devices/{device_id}/status", json={"state": "idle"}).raise_for_status()
            status = next_message(ws, lambda m: m["type"] == "device.status" and m["data"]["id"] == device_id)
            assert status["data"]["is_online"] is True
            as_machine.post(
                f"/api/v1/devices/{device_id}/status", json={"state": "idle", "temperature_c": 120.0}
            ).raise_for_status()
            alarm = next_message(ws, lambda m: m["type"] == "alarm.opened")
        assert alarm["data"]["type"] == AlarmType.TEMPERATURE_OUT_OF_RANGE
        assert Alarm.objects.filter(device_id=device_id, is_active=True).count() == 1

        # Jobs queued from both web processes run once across the two workers; a second delivery of
        # each (as after a worker's visibility timeout) is refused by the claim, and the workers'
        # progress reaches the socket on daphne.
        job_ids = []
        for server in (gunicorn, daphne):
            with staff_client(server, session) as staff:
                for _ in range(EXPORTS_PER_WEB_PROCESS):
                    reply = staff.post("/api/v1/orders/export")
                    assert reply.status_code == 202, reply.text
                    job_ids.append(reply.json()["data"]["id"])
        for job_id in job_ids:
            export_orders.apply_async([job_id], queue=shared_queue)
        finished = set()
        deadline = time.monotonic() + 60
        while finished != set(job_ids) and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            push = next_message(ws, lambda m: m["type"] == "job.progress", timeout_s=left)
            if push["data"]["status"] == TaskJob.Status.SUCCEEDED:
                finished.add(push["data"]["id"])
        assert finished == set(job_ids)
    jobs = TaskJob.objects.filter(pk__in=job_ids)
    assert sorted(jobs.values_list("status", "attempts", "result_rows")) == [
        (TaskJob.Status.SUCCEEDED, 1, ORDERS)
    ] * len(job_ids)

    def runs_and_refusals():
        text = "".join(log.read_text() for log in worker_logs)
        runs = re.findall(r"orders\.export_orders\[[^\]]+\] succeeded in [^:]+: (\d+)", text)
        refused = re.findall(r"orders\.export_orders\[[^\]]+\] succeeded in [^:]+: None", text)
        return len(runs), len(refused)

    wait_for(lambda: sum(runs_and_refusals()) == 2 * len(job_ids), timeout_s=60, what="every delivery")
    assert runs_and_refusals() == (len(job_ids), len(job_ids))

    # One throttle counts the registrations both web processes answered (a wrong secret, each time).
    def register(server):
        return httpx.post(
            f"{server.url}/api/v1/devices/register",
            json={"serial": "XPROC-X", "model": "CM-2000", "provisioning_secret": "wrong"},
            timeout=30,
        ).status_code

    spent = [register(server) for server in (gunicorn, daphne) * (REGISTRATIONS_PER_HOUR // 2)]
    assert 429 not in spent and all(400 <= code < 500 for code in spent), spent
    assert [register(gunicorn), register(daphne)] == [429, 429]
