"""PostgreSQL connections under concurrency, in every server the README starts: pooled (daphne, and
runserver, which is daphne's) or one per sync worker (gunicorn), so they stay bounded; and a request
that cannot get one answers 503 UNAVAILABLE with Retry-After, never a 500. Real servers, real HTTP."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from django.db import connection

from orders.models import Order
from tests.conftest import protocol_order
from tests.e2e.conftest import asgi_server
from tests.factories import MerchantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RETRIES = 50
REGISTRATIONS = 16
POOL_MAX_SIZE = 4
# Every request must reach the database here: gunicorn's shedding of requests that queued too long is
# tested in test_overload.py.
UNTHROTTLED = {"THROTTLE_DEVICE": "100000/min", "THROTTLE_REGISTER": "100000/min", "MAX_QUEUE_WAIT_MS": "0"}


@pytest.fixture(autouse=True)
def _postgres_only(db):
    if connection.vendor != "postgresql":
        pytest.skip(reason=f"connection pooling is PostgreSQL's (this run uses {connection.vendor})")


def at_once(calls):
    """Run every call at the same moment, each in its own thread; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


class ConnectionWatch:
    """Samples how many connections the server's processes hold, from outside: they are the ones with
    the server's application name (libpq's PGAPPNAME, set in the server's environment)."""

    def __init__(self, application_name: str):
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._application_name = application_name

    def _watch(self):
        with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as db:
            while not self._stop.is_set():
                (held,) = db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    [self._application_name],
                ).fetchone()
                self.most = max(self.most, held)
                self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def register(client, merchant, serial):
    body = {
        "serial": serial,
        "model": "CM-2000",
        "firmware": "1.0",
        "provisioning_secret": merchant.provisioning_secret,
    }
    return client.post("/api/v1/devices/register", json=body)


# runserver keeps, besides its pool, the connection its start-up checks opened in the main thread.
@pytest.mark.parametrize(
    ("server", "bound"), [("daphne", POOL_MAX_SIZE), ("runserver", POOL_MAX_SIZE + 1), ("gunicorn", 2)]
)
def test_concurrent_machines_hold_a_bounded_number_of_connections_and_get_no_500(
    server, bound, django_db_blocker, tmp_path_factory
):
    merchant = MerchantFactory(name="Crowd")
    application_name = f"pool-test-{server}-{os.getpid()}"
    env = {
        **UNTHROTTLED,
        "DB_POOL_MAX_SIZE": str(POOL_MAX_SIZE),
        "DB_POOL_TIMEOUT_S": "20",
        "PGAPPNAME": application_name,
    }
    with asgi_server(django_db_blocker, tmp_path_factory, server=server, **env) as live:
        client = httpx.Client(base_url=live.url, timeout=60)
        first = register(client, merchant, "CROWD-0").json()["data"]
        auth = {"Authorization": f"Device {first['token']}"}
        order = protocol_order("CROWD-ORDER-1")

        def retry():
            return client.post(
                f"/api/v1/devices/{first['device_id']}/orders/create", json=order, headers=auth
            )

        calls = [retry] * RETRIES + [
            lambda i=i: register(client, merchant, f"CROWD-{i}") for i in range(1, REGISTRATIONS + 1)
        ]
        with ConnectionWatch(application_name) as watch:
            replies = at_once(calls)

    statuses = [reply.status_code for reply in replies]
    assert sorted(statuses[:RETRIES]) == [200] * (RETRIES - 1) + [201], statuses
    assert statuses[RETRIES:] == [201] * REGISTRATIONS, [r.text for r in replies[RETRIES:]]
    assert Order.objects.filter(machine_order_id="CROWD-ORDER-1").count() == 1
    # +1: a connection closed a moment ago may still be listed while its backend exits.
    assert 1 <= watch.most <= bound + 1, f"{server} held {watch.most} connections at once"


def test_an_exhausted_pool_answers_503_with_retry_after_and_loses_nothing(
    django_db_blocker, tmp_path_factory
):
    merchant = MerchantFactory(name="Thin pool")
    env = {**UNTHROTTLED, "DB_POOL_MAX_SIZE": "1", "DB_POOL_TIMEOUT_S": "0.2"}
    with asgi_server(django_db_blocker, tmp_path_factory, **env) as live:
        client = httpx.Client(base_url=live.url, timeout=60)
        first = register(client, merchant, "THIN-0").json()["data"]
        auth = {"Authorization": f"Device {first['token']}"}
        orders = [protocol_order(f"THIN-{i}") for i in range(RETRIES)]
        calls = [
            lambda body=body: client.post(
                f"/api/v1/devices/{first['device_id']}/orders/create", json=body, headers=auth
            )
            for body in orders
        ]
        replies = at_once(calls)

    statuses = [reply.status_code for reply in replies]
    assert set(statuses) <= {201, 503}, statuses
    refused = [reply for reply in replies if reply.status_code == 503]
    assert refused, "a pool of one connection with no patience refused nobody"
    for reply in refused:
        assert reply.json()["error"]["code"] == "UNAVAILABLE"
        assert int(reply.headers["Retry-After"]) > 0
    # Exactly the orders acknowledged were taken, each once; a refused one was not half-taken.
    taken = set(Order.objects.filter(device_id=first["device_id"]).values_list("machine_order_id", flat=True))
    acknowledged = {
        body["order_id"] for body, reply in zip(orders, replies, strict=True) if reply.status_code == 201
    }
    assert taken == acknowledged
