"""/metrics as production serves it: two gunicorn workers and a Celery worker with two forked processes,
all writing to one PROMETHEUS_MULTIPROC_DIR (as `make run-prod` runs them), scraped over a real socket
and parsed as Prometheus parses it.

The scrape counts every request whichever worker served it, carries each business figure once with the
database's value (not once per process, not summed over them), counts the Celery worker's tasks, and
survives a SIGKILLed web worker: its requests stay counted and the live-worker gauge is back to 2 once
gunicorn has replaced it.
"""

import concurrent.futures
import os
import shutil
import signal
import time
from decimal import Decimal
from pathlib import Path

import httpx
import prometheus_client
import pytest
from django.conf import settings
from django.db import connection
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from coffeeshop.celery import app as celery_app
from operations.tasks import sweep_commands
from tests.e2e.conftest import celery_worker, wsgi_server
from tests.factories import DeviceBinFactory, DeviceFactory, MerchantFactory, OrderFactory

pytestmark = pytest.mark.django_db(transaction=True)

BUSINESS_FAMILIES = (
    "coffeeshop_business_metrics_up",
    "coffeeshop_machines",
    "coffeeshop_online_rate",
    "coffeeshop_pending_commands",
    "coffeeshop_orders_today",
    "coffeeshop_sales_today",
    "coffeeshop_open_alarms",
    "coffeeshop_low_bins",
    "coffeeshop_empty_bins",
    "coffeeshop_rollouts_in_progress",
    "coffeeshop_celery_queue_length",
)
HEALTH = {"view": "health", "method": "GET"}
REQUESTS_SENT = 40
SWEEP = "operations.sweep_commands"


class Scrape:
    """One /metrics page: its text and its samples as {(name, frozenset(labels)): value}."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in self.samples, f"{key} appears twice on /metrics"
                self.samples[key] = sample.value

    def value(self, name: str, **labels) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def total(self, name: str) -> float:
        """The sum over every label set of `name` (0 when it has none)."""
        return sum(value for (sample, _labels), value in self.samples.items() if sample == name)

    def families_named(self, name: str) -> int:
        return self.text.count(f"# TYPE {name} ")


def scrape(url: str) -> Scrape:
    reply = httpx.get(f"{url}/metrics", timeout=30)
    assert reply.status_code == 200, reply.text
    return Scrape(reply.text)


def eventually(url: str, read, expected, *, what: str, timeout_s: float = 60):
    """Scrapes until `read(scrape)` equals `expected`; the last scrape."""
    deadline = time.monotonic() + timeout_s
    while True:
        page = scrape(url)
        seen = read(page)
        if seen == expected:
            return page
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: {seen!r} on /metrics after {timeout_s} s, expected {expected!r}")
        time.sleep(0.2)


def health_requests(page: Scrape) -> float:
    return page.value("django_http_requests_total_by_view_transport_method_total", transport="http", **HEALTH)


def tasks_run(page: Scrape, state: str) -> float:
    return page.value("coffeeshop_celery_tasks_total", task=SWEEP, state=state) or 0


def web_workers(master_pid: int) -> set[int]:
    return {int(pid) for pid in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()}


def health_requests_written_by(pid: int, metrics_dir: Path, scratch: Path) -> float:
    """What one worker counted of its own: its counter file, merged alone."""
    scratch.mkdir()
    shutil.copy(metrics_dir / f"counter_{pid}.db", scratch)
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(scratch))
    labels = {"transport": "http", **HEALTH}
    value = registry.get_sample_value("django_http_requests_total_by_view_transport_method_total", labels)
    return value or 0


def send_health_requests(url: str, count: int) -> None:
    """`count` requests from four clients at once, each on a new connection, so both workers take some."""

    def one(_n):
        return httpx.get(f"{url}/api/v1/health", headers={"Connection": "close"}, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert set(pool.map(one, range(count))) == {200}


@pytest.fixture(scope="module")
def production_processes(django_db_setup, django_db_blocker, tmp_path_factory):
    """gunicorn (2 workers) and a Celery worker (2 processes) sharing one multiprocess directory, for
    the whole module (they take a minute to start on a loaded machine): each test reads what it
    changed, never an absolute count."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip(reason="production's shape: PostgreSQL and Redis (several processes on one database)")
    metrics_dir = tmp_path_factory.mktemp("prometheus")
    queue = f"metrics-multiprocess-{os.getpid()}"
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "CELERY_TASK_DEFAULT_QUEUE": queue}
    with (
        # No shedding: on a loaded machine a request may wait in the backlog, and must still be counted.
        wsgi_server(
            django_db_blocker, tmp_path_factory, workers=2, MAX_QUEUE_WAIT_MS="0", **shared
        ) as server,
        celery_worker(queue, django_db_blocker, tmp_path_factory.mktemp("celery"), concurrency=2, **shared),
    ):
        yield server, metrics_dir, queue


@pytest.fixture
def fleet():
    merchant = MerchantFactory(name="Multiprocess")
    lobby = DeviceFactory(merchant=merchant, is_online=True, state="idle")
    DeviceFactory(merchant=merchant, is_online=True, state="idle")
    DeviceFactory(merchant=merchant, is_online=True, state="idle")
    DeviceFactory(merchant=merchant, is_online=False, state="fault")
    DeviceBinFactory(device=lobby, index=1, material_code="MILK-POWDER", remaining=50, level_pct=5)
    DeviceBinFactory(device=lobby, index=2, material_code="SUGAR", remaining=0, level_pct=0)
    OrderFactory(device=lobby, total=Decimal("18.00"))
    return merchant


def test_every_request_is_counted_once_whichever_web_worker_served_it(production_processes):
    server, _dir, _queue = production_processes
    before = health_requests(scrape(server.url)) or 0  # the start-up's health checks

    send_health_requests(server.url, REQUESTS_SENT)

    page = eventually(
        server.url, health_requests, before + REQUESTS_SENT, what="health requests counted by both workers"
    )
    latency_count = page.value("django_http_requests_latency_seconds_by_view_method_count", **HEALTH)
    assert latency_count == before + REQUESTS_SENT
    assert page.value("django_db_execute_total", alias="default", vendor="postgresql") >= REQUESTS_SENT
    assert page.value("django_db_query_duration_seconds_count", alias="default", vendor="postgresql") > 0


def test_each_business_figure_is_scraped_once_with_the_databases_value(production_processes, fleet):
    server, _dir, queue = production_processes

    page = scrape(server.url)

    assert {name: page.families_named(name) for name in BUSINESS_FAMILIES} == dict.fromkeys(
        BUSINESS_FAMILIES, 1
    )
    shop = fleet.name
    assert page.value("coffeeshop_business_metrics_up") == 1
    assert page.value("coffeeshop_machines", merchant=shop, connectivity="online", state="idle") == 3
    assert page.value("coffeeshop_machines", merchant=shop, connectivity="offline", state="fault") == 1
    assert page.value("coffeeshop_online_rate", merchant=shop) == 0.75
    assert page.value("coffeeshop_orders_today", merchant=shop, currency="CNY") == 1
    assert page.value("coffeeshop_sales_today", merchant=shop, currency="CNY") == 18.0
    assert page.value("coffeeshop_low_bins", merchant=shop) == 2
    assert page.value("coffeeshop_empty_bins", merchant=shop) == 1
    assert page.value("coffeeshop_celery_queue_length", queue=queue) == 0  # every task was answered


def test_the_celery_workers_processes_count_their_tasks_by_outcome(production_processes):
    server, _dir, queue = production_processes
    # The worker answered one sweep at start (conftest.celery_worker); once it is counted, nothing runs.
    eventually(server.url, lambda page: tasks_run(page, "SUCCESS") >= 1, True, what="the start-up task")
    succeeded = tasks_run(scrape(server.url), "SUCCESS")

    for _ in range(4):
        sweep_commands.apply_async(queue=queue).get(timeout=60)
    # By name, as another version of the code would send it: the worker's task takes no argument.
    failing = celery_app.send_task(SWEEP, args=["an argument it does not take"], queue=queue)
    failing.get(timeout=60, propagate=False)

    page = eventually(server.url, lambda page: tasks_run(page, "SUCCESS"), succeeded + 4, what="sweeps run")
    page = eventually(
        server.url, lambda page: tasks_run(page, "FAILURE"), 1, what="the failed sweep"
    )  # the only one
    assert page.value("coffeeshop_celery_queue_length", queue=queue) == 0


def test_a_killed_web_worker_keeps_its_counts_and_leaves_the_live_worker_gauge(
    production_processes, tmp_path
):
    server, metrics_dir, _queue = production_processes
    master = server.process.pid
    eventually(server.url, lambda page: page.value("coffeeshop_web_workers"), 2, what="live web workers")
    workers = web_workers(master)
    assert len(workers) == 2
    send_health_requests(server.url, REQUESTS_SENT)
    counted = health_requests(scrape(server.url))
    served = {pid: health_requests_written_by(pid, metrics_dir, tmp_path / str(pid)) for pid in workers}
    killed = max(served, key=served.get)  # the one that served more: its share must not vanish with it
    assert served[killed] > 0

    os.kill(killed, signal.SIGKILL)

    deadline = time.monotonic() + 60
    while killed in (replaced := web_workers(master)) or len(replaced) != 2:
        assert time.monotonic() < deadline, f"gunicorn did not replace worker {killed}: {replaced}"
        time.sleep(0.2)
    page = eventually(
        server.url, lambda page: page.value("coffeeshop_web_workers"), 2, what="live web workers"
    )
    assert health_requests(page) == counted
    send_health_requests(server.url, REQUESTS_SENT)
    eventually(server.url, health_requests, counted + REQUESTS_SENT, what="requests after the replacement")
