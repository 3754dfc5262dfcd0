"""Redis configured but not answering: a process works on PostgreSQL alone (as on the embedded default)
for a moment at a time, instead of answering 500 or 503, and throttles keep counting in its memory."""

import socket
import time

import pytest
from rest_framework.throttling import SimpleRateThrottle

from coffeeshop.redis import REDIS_RETRY_AFTER_S, _breaker, _client_for, get_redis
from devices.models import Device
from orders.models import Order
from tests.conftest import protocol_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_out(settings, machine):
    """Redis configured at an address where nothing answers (after the machine registered)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _client_for.cache_clear()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    yield
    _client_for.cache_clear()


def heartbeat(machine, **fields):
    return machine.post(
        f"/api/v1/devices/{machine.device.pk}/status", {"state": "idle", **fields}, format="json"
    )


def test_heartbeats_and_orders_are_recorded_in_postgresql_while_redis_is_out(machine, redis_out):
    replies = [heartbeat(machine, temperature_c=90.0 + i) for i in range(3)]
    sale = machine.post(
        f"/api/v1/devices/{machine.device.pk}/orders/create", protocol_order("OUT-1"), format="json"
    )

    assert [r.status_code for r in replies] == [200, 200, 200]
    assert sale.status_code == 201, sale.content
    assert Device.objects.get(pk=machine.device.pk).temperature_c == 92.0
    assert Order.objects.filter(machine_order_id="OUT-1").exists()


def test_after_a_failure_redis_is_left_alone_a_moment_then_tried_again_after_the_recovery_hooks(
    machine, redis_out, monkeypatch
):
    ran = []
    monkeypatch.setattr(_breaker, "hooks", [ran.append])
    heartbeat(machine)
    assert get_redis() is None
    assert ran == []

    later = time.monotonic() + REDIS_RETRY_AFTER_S + 0.1
    monkeypatch.setattr("coffeeshop.redis.time.monotonic", lambda: later)

    client = get_redis()
    assert client is not None
    assert get_redis() is client
    assert ran == [client]  # once, before anyone used Redis again


def test_throttles_keep_counting_in_the_process_while_redis_is_out(machine, redis_out, monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"device": "3/min", "user": "1000/min"})

    statuses = [heartbeat(machine).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
