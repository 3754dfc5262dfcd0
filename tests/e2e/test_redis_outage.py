"""Redis stopped under a running server: machines, staff and the admin keep working on PostgreSQL
(slower, never a 500), and the server goes back to Redis by itself once it answers, without trusting
what Redis remembered from before the outage. A private redis-server on its own port (with its
append-only file, so it comes back with its old data, as a restarted production Redis does), killed
and started again; a real daphne; real HTTP."""

import subprocess
import time

import httpx
import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from accounts.models import Role
from devices.models import Device
from operations.models import RemoteCommand
from orders.models import Order
from tests.conftest import protocol_order
from tests.e2e.conftest import _free_port, asgi_server, stop
from tests.factories import MerchantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

IDLE = {"state": "idle", "temperature_c": 92.0}
FAULT = {"state": "fault", "temperature_c": 92.0}


def start_redis(port: int, data_dir, appendonly: str = "yes") -> subprocess.Popen:
    """redis-server with the append-only file the README asks for in production (`appendonly no`: as
    this machine's own Redis runs)."""
    process = subprocess.Popen(
        [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", appendonly, "--appendfsync", "everysec", "--dir", str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout != b"PONG\n":
        if time.monotonic() > deadline:
            pytest.fail("the private redis-server did not start")
        time.sleep(0.1)
    return process


@pytest.fixture
def private_redis(tmp_path):
    port = _free_port()
    holder = {"process": start_redis(port, tmp_path), "port": port, "dir": tmp_path}
    yield holder
    stop(holder["process"], timeout_s=5)


def redis_keys(port: int, pattern: str) -> list[str]:
    found = subprocess.run(
        ["redis-cli", "-p", str(port), "--scan", "--pattern", pattern], capture_output=True
    )
    return found.stdout.decode().split()


class Machine:
    def __init__(self, client: httpx.Client, merchant, serial: str):
        body = {
            "serial": serial,
            "model": "CM-2000",
            "firmware": "1.0",
            "provisioning_secret": merchant.provisioning_secret,
        }
        reply = client.post("/api/v1/devices/register", json=body)
        assert reply.status_code == 201, reply.text
        self.client = client
        self.id, self.token = reply.json()["data"]["device_id"], reply.json()["data"]["token"]
        self.auth = {"Authorization": f"Device {self.token}"}

    def heartbeat(self, body=IDLE):
        return self.client.post(f"/api/v1/devices/{self.id}/status", json=body, headers=self.auth)

    def sell(self, order_id: str):
        return self.client.post(
            f"/api/v1/devices/{self.id}/orders/create", json=protocol_order(order_id), headers=self.auth
        )


def test_during_a_redis_outage_everything_works_on_postgresql_and_recovers_by_itself(
    private_redis, django_db_blocker, tmp_path_factory
):
    merchant = MerchantFactory(name="Outage")
    ops = UserFactory(role=Role.OPS, merchants=[merchant])
    staff = {"Authorization": f"Token {Token.objects.create(user=ops).key}"}
    admin_client = Client()
    admin_client.force_login(ops)
    session = {"sessionid": admin_client.cookies["sessionid"].value}
    port = private_redis["port"]
    with asgi_server(
        django_db_blocker,
        tmp_path_factory,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        CACHE_KEY_PREFIX="outage",
    ) as server:
        client = httpx.Client(base_url=server.url, timeout=30)
        lobby, hall, corner = (Machine(client, merchant, f"OUT-{i}") for i in range(3))
        for machine in (lobby, hall, corner):
            assert machine.heartbeat().status_code == 200
            assert machine.heartbeat().status_code == 200  # the quiet path: Redis now knows it is idle
        assert redis_keys(port, "outage:hb:fp:*")

        private_redis["process"].kill()
        private_redis["process"].wait()

        during = [lobby.heartbeat() for _ in range(5)]
        during += [lobby.heartbeat(FAULT), lobby.sell("DURING-1"), lobby.sell("DURING-1")]
        during.append(client.post("/api/v1/devices/register", json={
            "serial": "OUT-NEW", "model": "CM-2000", "firmware": "1.0",
            "provisioning_secret": merchant.provisioning_secret,
        }))  # fmt: skip
        during.append(
            client.post(
                f"/api/v1/devices/{hall.id}/commands",
                json={"type": "clean", "payload": {"program": "rinse"}},
                headers=staff,
            )
        )
        during.append(client.post(f"/api/v1/devices/{corner.id}/revoke-token", headers=staff))
        during.append(client.get("/admin/login/"))
        during.append(client.get("/admin/devices/device/", cookies=session))
        during.append(client.get("/api/v1/health"))

        assert [(r.request.url.path, r.status_code) for r in during if r.status_code >= 300] == []
        assert during[-1].json()["data"]["degraded"] is True
        assert Device.objects.get(pk=lobby.id).state == "fault"
        assert Order.objects.filter(machine_order_id="DURING-1").count() == 1
        assert Device.objects.filter(serial="OUT-NEW").exists()

        # Redis comes back with what it knew before the outage: lobby idle, hall without commands,
        # corner's token still cached.
        private_redis["process"] = start_redis(port, private_redis["dir"])
        assert redis_keys(port, "outage:hb:fp:*"), (
            "the restarted Redis lost its data: the test proves nothing"
        )
        deadline = time.monotonic() + 30
        while not redis_keys(port, "outage:cmd:has:*"):  # set again by the recovery (hall's command)
            assert time.monotonic() < deadline, "the server did not go back to Redis once it answered"
            assert corner.heartbeat().status_code == 401  # revoked during the outage, cached before it
            time.sleep(0.5)

        assert lobby.heartbeat().status_code == 200  # idle again, as Redis last knew it
        assert Device.objects.get(pk=lobby.id).state == "idle"
        delivered = hall.heartbeat().json()["data"]["commands"]
        assert [c["type"] for c in delivered] == ["clean"]
        assert RemoteCommand.objects.get(device_id=hall.id).status != "pending"
        assert lobby.sell("AFTER-1").status_code == 201
        assert redis_keys(port, "outage:hb:fp:*"), "the server is not using Redis again"
