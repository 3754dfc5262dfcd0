"""SIGTERM to a gunicorn worker, then to the master, while machines keep sending orders: a worker finishes
the request it holds and is replaced without a machine noticing; the master stops taking connections,
lets its workers finish theirs and exits 0. Every order answered accepted is stored exactly once, and an
order whose reply was lost in the shutdown (a reset connection) is either stored or not: the machine's
retry, to the server started again, gets 200 duplicate or 201 accordingly, so nothing is lost or doubled.
Real gunicorn (the production config, gunicorn.conf.py), real HTTP clients, the machine protocol."""

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.db.models import Count

from orders.models import Order
from tests.conftest import protocol_order
from tests.e2e.conftest import stop, wsgi_server
from tests.e2e.test_overload import register
from tests.e2e.test_worker_killed import wait_for
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db(transaction=True)

MACHINES = 4
# A machine back online sends its backlog: a request long enough for a worker to be caught inside one.
BACKLOG = 150
ACCESS_LOG = {"GUNICORN_CMD_ARGS": "--access-logfile - --access-logformat 'served-by=%(p)s status=%(s)s'"}


@dataclass
class Machine:
    """A machine of the protocol: it sends its orders (alternately one and a backlog) and repeats a
    request until it is answered; a 503 is retried after a moment. What the server answered, per order."""

    device_id: str
    auth: dict
    prefix: str
    accepted: set = field(default_factory=set)
    duplicates: set = field(default_factory=set)
    unanswered: list = field(default_factory=list)  # orders whose reply never came, in the shutdown
    statuses: list = field(default_factory=list)
    transport_errors: list = field(default_factory=list)

    def order(self, n: int) -> dict:
        return protocol_order(f"{self.prefix}-{n:06d}")

    def run(self, url: str, master_stopping: threading.Event, done: threading.Event) -> None:
        sent = 0
        with httpx.Client(base_url=url, timeout=60) as client:
            while not done.is_set():
                size = 1 if sent % 2 == 0 else BACKLOG
                batch = [self.order(n) for n in range(sent, sent + size)]
                if not self.send_until_answered(client, batch, master_stopping):
                    self.unanswered += [order["order_id"] for order in batch]
                    return  # the server is gone; the machine tries again once it is back (below)
                sent += size

    def send_until_answered(self, client: httpx.Client, batch: list[dict], master_stopping) -> bool:
        body = batch[0] if len(batch) == 1 else {"orders": batch}
        while True:
            try:
                reply = client.post(
                    f"/api/v1/devices/{self.device_id}/orders/create", json=body, headers=self.auth
                )
            except httpx.TransportError as error:
                if master_stopping.is_set():
                    return False
                self.transport_errors.append(repr(error))
                time.sleep(0.2)
                continue
            self.statuses.append(reply.status_code)
            if reply.status_code == 503:
                time.sleep(0.2)
                continue
            self.record(batch, reply)
            return True

    def record(self, batch: list[dict], reply: httpx.Response) -> None:
        data = reply.json()["data"]
        results = [data] if len(batch) == 1 else data["results"]
        for order, result in zip(batch, results, strict=True):
            assert result["order_id"] == order["order_id"]
            {"accepted": self.accepted, "duplicate": self.duplicates}[result["result"]].add(order["order_id"])


def workers_of(master_pid: int) -> set[int]:
    return {int(pid) for pid in Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()}


def is_serving(worker_pid: int, port: int) -> bool:
    """Whether `worker_pid` holds an established connection on the server's `port`: a request in hand."""
    inodes = set()
    for fd in Path(f"/proc/{worker_pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    for line in Path(f"/proc/{worker_pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
        if local_port == port and state == "01" and inode in inodes:
            return True
    return False


def a_worker_serving(master_pid: int, port: int) -> int:
    """A worker caught with a request in hand (there is always one soon, with the machines sending)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for worker in workers_of(master_pid):
            try:
                if is_serving(worker, port):
                    return worker
            except FileNotFoundError:  # it exited meanwhile
                continue
        time.sleep(0.01)
    pytest.fail("no worker was ever seen serving a request")


def served_since(log_path: Path, offset: int, pid: int) -> int:
    """How many requests `pid` answered after the log had `offset` characters."""
    return log_path.read_text()[offset:].count(f"served-by=<{pid}>")


def accepted_count(machines) -> int:
    return sum(len(machine.accepted) for machine in machines)


def test_sigterm_to_a_worker_then_the_master_loses_and_doubles_no_order(django_db_blocker, tmp_path_factory):
    merchant = MerchantFactory(name="Graceful stop")
    master_stopping, done = threading.Event(), threading.Event()
    with wsgi_server(django_db_blocker, tmp_path_factory, workers=2, **ACCESS_LOG) as server:
        master, port = server.process, int(server.url.rsplit(":", 1)[1])
        with httpx.Client(base_url=server.url, timeout=30) as client:
            machines = [
                Machine(*register(client, merchant.provisioning_secret, f"TERM-{n}"), prefix=f"TERM{n}")
                for n in range(MACHINES)
            ]
        threads = [
            threading.Thread(target=machine.run, args=(server.url, master_stopping, done))
            for machine in machines
        ]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: accepted_count(machines) >= BACKLOG, timeout_s=120, what="orders to stream in")

            # One worker: it is caught with a request in hand, finishes it after the signal and is replaced.
            for _attempt in range(5):
                worker = a_worker_serving(master.pid, port)
                offset = len(server.log_path.read_text())
                os.kill(worker, signal.SIGTERM)
                wait_for(
                    lambda w=worker: w not in workers_of(master.pid), timeout_s=60, what="the worker to exit"
                )
                if served_since(server.log_path, offset, worker):
                    break
            else:
                pytest.skip(
                    reason="each signalled worker had just finished its request: nothing was in flight"
                )
            wait_for(lambda: len(workers_of(master.pid)) == 2, timeout_s=60, what="a new worker")
            after_worker = accepted_count(machines)
            wait_for(
                lambda: accepted_count(machines) >= after_worker + BACKLOG,
                timeout_s=120,
                what="orders to keep streaming in",
            )

            # The master, while a worker holds a request: it exits 0 once its workers have finished.
            a_worker_serving(master.pid, port)
            offset = len(server.log_path.read_text())
            workers = workers_of(master.pid)
            master_stopping.set()
            master.terminate()
            returncode = master.wait(timeout=90)
            finished_in_shutdown = sum(served_since(server.log_path, offset, pid) for pid in workers)
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=90)
            stop(master, timeout_s=5)
        log = server.log_path.read_text()

    assert returncode == 0, log[-3000:]
    assert "SIGKILL" not in log and "WORKER TIMEOUT" not in log, log[-3000:]
    if not finished_in_shutdown:
        pytest.skip(reason="the workers had just finished their requests when the master was signalled")
    for machine in machines:
        # Until the master was signalled no machine saw a connection fail, and no request failed.
        assert machine.transport_errors == [], machine.transport_errors
        assert set(machine.statuses) <= {200, 201, 503}, machine.statuses
        assert machine.duplicates == set()  # no reply was lost before, so nothing was sent twice

    accepted = set().union(*(machine.accepted for machine in machines))
    unanswered = [order_id for machine in machines for order_id in machine.unanswered]
    stored_before_retry = set(
        Order.objects.filter(machine_order_id__startswith="TERM").values_list("machine_order_id", flat=True)
    )
    assert accepted <= stored_before_retry
    assert stored_before_retry <= accepted | set(unanswered), "stored orders no machine ever sent"

    # Each machine sends its unanswered request again, to the server started again.
    with (
        wsgi_server(django_db_blocker, tmp_path_factory, workers=1) as again,
        httpx.Client(base_url=again.url, timeout=60) as client,
    ):
        retry_answers = {}
        for machine in machines:
            if machine.unanswered:
                replay = Machine(machine.device_id, machine.auth, machine.prefix)
                batch = [protocol_order(order_id) for order_id in machine.unanswered]
                assert replay.send_until_answered(client, batch, master_stopping=threading.Event())
                retry_answers |= dict.fromkeys(replay.accepted, "accepted")
                retry_answers |= dict.fromkeys(replay.duplicates, "duplicate")

    assert retry_answers == {
        order_id: "duplicate" if order_id in stored_before_retry else "accepted" for order_id in unanswered
    }
    stored = Order.objects.filter(machine_order_id__startswith="TERM").values("machine_order_id")
    assert not stored.annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert {row["machine_order_id"] for row in stored} == accepted | set(unanswered)
