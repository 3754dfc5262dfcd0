"""A Redis restart loses no heartbeat the server acknowledged: the write-behind waits in Redis for the
flush, and Redis runs with its append-only file (README), which `shutdown nosave` still writes out.
A private redis-server, shut down and started again on the same files; a real daphne; real HTTP."""

import subprocess

import httpx
import pytest
from django.core.checks import Warning as CheckWarning

from coffeeshop.redis import _client_for, reset_breaker
from devices.checks import redis_persists_the_write_behind
from devices.models import Device
from devices.services import flush_heartbeats
from tests.e2e.conftest import _free_port, asgi_server, stop
from tests.e2e.test_redis_outage import Machine, start_redis
from tests.factories import MerchantFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def persistent_redis(tmp_path, settings):
    """A private Redis with its append-only file, which this test process uses too."""
    port = _free_port()
    holder = {"process": start_redis(port, tmp_path), "port": port, "dir": tmp_path}
    _client_for.cache_clear()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "KEY_PREFIX": "restart"}}
    yield holder
    stop(holder["process"], timeout_s=5)
    _client_for.cache_clear()
    reset_breaker()


def test_heartbeats_acknowledged_before_a_redis_restart_reach_the_database(
    persistent_redis, django_db_blocker, tmp_path_factory
):
    merchant = MerchantFactory(name="Restart")
    port = persistent_redis["port"]
    with asgi_server(
        django_db_blocker,
        tmp_path_factory,
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        CACHE_KEY_PREFIX="restart",
    ) as server:
        lobby = Machine(httpx.Client(base_url=server.url, timeout=30), merchant, "RESTART-1")
        for temperature in (90.0, 91.0, 92.0, 93.7):
            assert lobby.heartbeat({"state": "idle", "temperature_c": temperature}).status_code == 200
    assert Device.objects.get(pk=lobby.id).temperature_c == 90.0  # the rest is in Redis only

    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)
    persistent_redis["process"].wait(timeout=10)
    persistent_redis["process"] = start_redis(port, persistent_redis["dir"])
    _client_for.cache_clear()

    assert flush_heartbeats() == 1
    assert Device.objects.get(pk=lobby.id).temperature_c == 93.7


def test_check_deploy_warns_when_redis_runs_without_its_append_only_file(tmp_path, settings):
    port = _free_port()
    bare = start_redis(port, tmp_path, appendonly="no")
    try:
        _client_for.cache_clear()
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        warned = redis_persists_the_write_behind(None)
        subprocess.run(["redis-cli", "-p", str(port), "config", "set", "appendonly", "yes"], check=True)
        persisted = redis_persists_the_write_behind(None)
    finally:
        stop(bare, timeout_s=5)
        _client_for.cache_clear()

    assert [(type(m), m.id) for m in warned] == [(CheckWarning, "devices.W001")]
    assert "up to 15 s" in warned[0].msg
    assert persisted == []
