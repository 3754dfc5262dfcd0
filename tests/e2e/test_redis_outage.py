"""Redis stopped under a running server: machines get the protocol's 503 UNAVAILABLE with
Retry-After (never a 500) and the server recovers by itself once Redis is back. A private
redis-server on its own port, killed and started again; a real daphne; real HTTP."""

import subprocess
import time

import httpx
import pytest

from tests.e2e.conftest import _free_port, asgi_server, stop
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db(transaction=True)

HEARTBEAT = {"state": "idle", "temperature_c": 92.0}


def start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout != b"PONG\n":
        if time.monotonic() > deadline:
            pytest.fail("the private redis-server did not start")
        time.sleep(0.1)
    return process


@pytest.fixture
def private_redis():
    port = _free_port()
    holder = {"process": start_redis(port), "port": port}
    yield holder
    stop(holder["process"], timeout_s=5)


def test_a_redis_outage_answers_503_with_retry_after_and_recovers(
    private_redis, django_db_blocker, tmp_path_factory
):
    merchant = MerchantFactory(name="Outage")
    redis_url = f"redis://127.0.0.1:{private_redis['port']}/0"
    with asgi_server(
        django_db_blocker, tmp_path_factory, REDIS_URL=redis_url, CACHE_KEY_PREFIX="outage"
    ) as server:
        client = httpx.Client(base_url=server.url, timeout=10)
        registration = client.post(
            "/api/v1/devices/register",
            json={
                "serial": "OUT-1",
                "model": "CM-2000",
                "firmware": "1.0",
                "provisioning_secret": merchant.provisioning_secret,
            },
        )
        assert registration.status_code == 201, registration.text
        device_id, token = registration.json()["data"]["device_id"], registration.json()["data"]["token"]
        auth = {"Authorization": f"Device {token}"}

        def heartbeat():
            return client.post(f"/api/v1/devices/{device_id}/status", json=HEARTBEAT, headers=auth)

        assert heartbeat().status_code == 200

        private_redis["process"].kill()
        private_redis["process"].wait()
        during = [heartbeat() for _ in range(10)]
        during.append(client.get("/api/v1/health"))

        assert [
            reply.status_code for reply in during if reply.status_code >= 500 and reply.status_code != 503
        ] == []
        for reply in during:
            if reply.status_code == 503:
                assert reply.json()["error"]["code"] == "UNAVAILABLE"
                assert int(
                    reply.headers.get("Retry-After", reply.json()["error"]["details"].get("retry_after_s", 1))
                )

        private_redis["process"] = start_redis(private_redis["port"])
        deadline = time.monotonic() + 30
        while heartbeat().status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover once Redis was back"
            time.sleep(0.5)
