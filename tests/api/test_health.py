"""GET /api/v1/health: what a load balancer and an operator read about the dependencies."""

import os
import socket

import pytest
from django.db import OperationalError
from rest_framework.throttling import SimpleRateThrottle

from coffeeshop.redis import _client_for

pytestmark = pytest.mark.django_db

REDIS_CONFIGURED = bool(os.environ.get("REDIS_URL", "").strip())


def closed_port() -> int:
    """A local port nothing listens on: bound once by us, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_down(settings):
    """Redis configured at an address where nothing answers."""
    _client_for.cache_clear()
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    yield
    _client_for.cache_clear()


def test_health_reports_the_database_with_its_latency(api):
    reply = api.get("/api/v1/health")

    assert reply.status_code == 200
    body = reply.json()
    assert body["ok"] is True
    database = body["data"]["database"]
    assert database["ok"] is True
    assert isinstance(database["latency_ms"], float | int)
    assert database["latency_ms"] >= 0


@pytest.mark.skipif(not REDIS_CONFIGURED, reason="needs Redis (REDIS_URL)")
def test_health_reports_redis_with_its_latency_when_configured(api):
    redis = api.get("/api/v1/health").json()["data"]["redis"]

    assert redis["ok"] is True
    assert redis["latency_ms"] >= 0


def test_health_says_redis_is_not_configured_without_redis_url(api, settings):
    settings.REDIS_URL = ""

    reply = api.get("/api/v1/health")

    assert reply.status_code == 200
    assert reply.json()["data"]["redis"] == {"ok": True, "configured": False}


def test_health_needs_no_login_and_no_token(api):
    assert api.get("/api/v1/health").status_code == 200


def test_health_is_never_throttled(api, monkeypatch):
    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {"user": "1/min", "device": "1/min", "register": "1/min"}
    )

    assert [api.get("/api/v1/health").status_code for _ in range(3)] == [200, 200, 200]


def test_health_is_503_in_the_envelope_when_the_database_is_down(api, monkeypatch):
    def database_down():
        raise OperationalError("could not connect to server at 10.0.0.5 (password=hunter2)")

    monkeypatch.setattr("coffeeshop.api.health._database", database_down)

    reply = api.get("/api/v1/health")

    assert reply.status_code == 503
    assert int(reply["Retry-After"]) > 0
    body = reply.json()
    assert body["ok"] is False
    assert body["error"]["code"] == "UNAVAILABLE"
    assert body["error"]["details"]["database"]["ok"] is False
    assert body["error"]["details"]["redis"]["ok"] is True
    assert "hunter2" not in reply.content.decode()
    assert "10.0.0.5" not in reply.content.decode()


def test_health_is_200_but_degraded_when_redis_is_down(api, redis_down):
    """Every server keeps working on PostgreSQL: a load balancer must not take them all out."""
    reply = api.get("/api/v1/health")

    assert reply.status_code == 200
    body = reply.json()["data"]
    assert body["degraded"] is True
    assert body["redis"]["ok"] is False
    assert body["database"]["ok"] is True
    assert "127.0.0.1" not in reply.content.decode()
