"""Past capacity a real gunicorn (sync workers, as in production) answers at once with the protocol's
503 UNAVAILABLE and Retry-After, before doing anything; under capacity it sheds nothing.

The worker is made to fall behind for real: it is stopped (SIGSTOP) while machines keep sending, so their
requests wait in the listen backlog as they do when the load is past what the workers can serve, and then
continued. How much is shed at twice the capacity is measured in bench/overload.py, not here."""

import concurrent.futures
import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from orders.models import Order
from tests.conftest import protocol_order
from tests.e2e.conftest import wsgi_server
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db(transaction=True)

HEARTBEAT = {"state": "idle", "temperature_c": 92.0}
STOPPED_FOR_S = 1.5  # three times the default MAX_QUEUE_WAIT_MS (500 ms)


def register(client: httpx.Client, secret: str, serial: str) -> tuple[str, dict]:
    reply = client.post(
        "/api/v1/devices/register",
        json={"serial": serial, "model": "CM-2000", "firmware": "1.0", "provisioning_secret": secret},
    )
    assert reply.status_code == 201, reply.text
    data = reply.json()["data"]
    return data["device_id"], {"Authorization": f"Device {data['token']}"}


def only_worker(master_pid: int) -> int:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.fixture
def machines(django_db_blocker, tmp_path_factory):
    """gunicorn with one sync worker and the default shedding limit, and 6 registered machines."""
    merchant = MerchantFactory(name="Overload")
    with (
        wsgi_server(django_db_blocker, tmp_path_factory, workers=1) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        fleet = [register(client, merchant.provisioning_secret, f"OVL-{i}") for i in range(6)]
        yield server, fleet


def send_orders(server, fleet, prefix: str) -> tuple[dict[str, httpx.Response], list[httpx.Response]]:
    """Every machine sends one new order at the same moment, then a heartbeat: the orders' replies by
    order id, and the heartbeats' replies."""

    def machine(n: int):
        device_id, auth = fleet[n]
        with httpx.Client(base_url=server.url, timeout=10) as client:
            order_id = f"{prefix}-{n}"
            order = client.post(
                f"/api/v1/devices/{device_id}/orders/create", json=protocol_order(order_id), headers=auth
            )
            heartbeat = client.post(f"/api/v1/devices/{device_id}/status", json=HEARTBEAT, headers=auth)
            return order_id, order, heartbeat

    with concurrent.futures.ThreadPoolExecutor(len(fleet)) as pool:
        results = list(pool.map(machine, range(len(fleet))))
    return {order_id: order for order_id, order, _ in results}, [heartbeat for *_, heartbeat in results]


def sent_while_stopped(worker: int, stopped_for_s: float, send, *args):
    """Whatever `send(*args)` returns, having been sent while the worker was stopped for `stopped_for_s`."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    os.kill(worker, signal.SIGSTOP)
    try:
        sent = pool.submit(send, *args)
        time.sleep(stopped_for_s)
    finally:
        os.kill(worker, signal.SIGCONT)
        pool.shutdown(wait=False)
    return sent.result(timeout=30)


def test_requests_that_waited_past_the_limit_get_503_at_once_and_are_not_half_done(machines):
    server, fleet = machines
    worker = only_worker(server.process.pid)

    orders, heartbeats = sent_while_stopped(worker, STOPPED_FOR_S, send_orders, server, fleet, "SHED")

    for reply in orders.values():
        assert reply.status_code == 503, reply.text
        assert reply.json() == {
            "ok": False,
            "error": {
                "code": "UNAVAILABLE",
                "message": "The server is busy; retry in a few seconds.",
                "details": {},
            },
        }
        assert int(reply.headers["Retry-After"]) >= 1
        assert reply.elapsed.total_seconds() < STOPPED_FOR_S + 2
    # The heartbeats were sent after the orders' 503s, to a worker that had caught up: answered.
    assert [reply.status_code for reply in heartbeats] == [200] * len(fleet)
    assert not Order.objects.filter(machine_order_id__startswith="SHED-").exists()

    # The machines retry as the protocol tells them: taken, each exactly once.
    retried, _ = send_orders(server, fleet, "SHED")
    assert sorted(reply.status_code for reply in retried.values()) == [201] * len(fleet)
    assert Order.objects.filter(machine_order_id__startswith="SHED-").count() == len(fleet)


def test_a_busy_server_under_capacity_sheds_nothing(machines):
    server, fleet = machines
    statuses = []
    deadline = time.monotonic() + 3
    round_ = 0
    while time.monotonic() < deadline:  # three machines at once, back to back: the worker is never idle
        orders, heartbeats = send_orders(server, fleet[:3], f"BUSY{round_}")
        statuses += [reply.status_code for reply in [*orders.values(), *heartbeats]]
        round_ += 1

    assert round_ >= 2
    assert set(statuses) == {200, 201}, statuses
    assert Order.objects.filter(machine_order_id__startswith="BUSY").count() == round_ * 3


def test_a_request_under_the_limit_is_served_after_a_short_stall(machines):
    server, fleet = machines
    worker = only_worker(server.process.pid)

    # Stopped for well under the 500 ms limit.
    orders, heartbeats = sent_while_stopped(worker, 0.15, send_orders, server, fleet[:2], "STALL")

    assert sorted(reply.status_code for reply in orders.values()) == [201, 201]
    assert [reply.status_code for reply in heartbeats] == [200, 200]


def test_shedding_is_off_with_a_limit_of_zero(django_db_blocker, tmp_path_factory):
    merchant = MerchantFactory(name="No shedding")
    with wsgi_server(django_db_blocker, tmp_path_factory, workers=1, MAX_QUEUE_WAIT_MS="0") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            fleet = [register(client, merchant.provisioning_secret, f"OFF-{i}") for i in range(3)]
        worker = only_worker(server.process.pid)
        orders, _ = sent_while_stopped(worker, STOPPED_FOR_S, send_orders, server, fleet, "LATE")

    assert sorted(reply.status_code for reply in orders.values()) == [201] * 3
    assert min(reply.elapsed.total_seconds() for reply in orders.values()) >= STOPPED_FOR_S - 0.3


def test_a_connection_that_had_sent_nothing_yet_is_served_not_shed(machines):
    """A proxy's pre-opened connection idles before its request: that wait is not the queue's."""
    server, fleet = machines
    worker = only_worker(server.process.pid)
    device_id, auth = fleet[0]
    port = int(server.url.rsplit(":", 1)[1])
    os.kill(worker, signal.SIGSTOP)
    try:
        idle = socket.create_connection(("127.0.0.1", port))
        time.sleep(STOPPED_FOR_S)
    finally:
        os.kill(worker, signal.SIGCONT)
    time.sleep(0.3)  # the worker has taken the idle connection and waits for its request
    body = json.dumps(HEARTBEAT).encode()
    idle.sendall(
        f"POST /api/v1/devices/{device_id}/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {auth['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    idle.settimeout(10)
    reply = b""
    while chunk := idle.recv(65536):
        reply += chunk
    idle.close()

    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]


def test_shed_connections_are_answered_and_closed_at_once(machines):
    """A client that reads until the server closes (as a load balancer or a plain HTTP/1.0 client does)
    gets each 503 and the end of the connection within moments, not after the worker waited on it."""
    server, fleet = machines
    worker = only_worker(server.process.pid)
    port = int(server.url.rsplit(":", 1)[1])
    body = json.dumps(HEARTBEAT).encode()
    os.kill(worker, signal.SIGSTOP)
    try:
        waiting = []
        for device_id, auth in fleet:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(
                f"POST /api/v1/devices/{device_id}/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: {auth['Authorization']}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            waiting.append(sock)
        time.sleep(STOPPED_FOR_S)
    finally:
        os.kill(worker, signal.SIGCONT)
        continued = time.monotonic()
    replies = []
    for sock in waiting:
        sock.settimeout(10)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        replies.append((reply, time.monotonic() - continued))
        sock.close()

    assert [reply[:12] for reply, _ in replies] == [b"HTTP/1.1 503"] * len(fleet)
    assert max(after for _, after in replies) < 1.0, [round(after, 2) for _, after in replies]
