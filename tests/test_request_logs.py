"""Every reply names its request (X-Request-ID) and every request writes one access line naming it,
who asked and how it went, in the JSON an operator's log search reads, with no token in it."""

import io
import json
import logging
import logging.config
import os
import socket

import pytest

from accounts.models import Role
from coffeeshop import request_id
from coffeeshop.logs import logging_config
from coffeeshop.request_id import RequestIdFilter, accepted_request_id
from coffeeshop.shedding import SheddingSyncWorker, offered_request_id, shed_replies
from tests.devices.test_heartbeat import FULL_HEARTBEAT, beat

pytestmark = pytest.mark.django_db

REDIS_CONFIGURED = bool(os.environ.get("REDIS_URL", "").strip())
needs_redis = pytest.mark.skipif(not REDIS_CONFIGURED, reason="the quiet heartbeat needs Redis (REDIS_URL)")


class Lines:
    """The lines the application logs, written by the production handler in LOG_FORMAT=json."""

    def __init__(self, stream: io.StringIO):
        self.stream = stream

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def text(self) -> str:
        return self.stream.getvalue()

    def access(self) -> list[dict]:
        return [line for line in self.all() if line["logger"] == "coffeeshop.access"]


def production_formatter(log_format: str) -> logging.Formatter:
    config = logging_config(log_format, "INFO")
    return logging.config.DictConfigurator(config).configure_formatter(dict(config["formatters"][log_format]))


@pytest.fixture
def log_lines():
    formatter = production_formatter("json")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield Lines(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_a_sane_request_id_from_the_caller_is_kept_on_the_reply_and_the_access_line(api, log_lines):
    reply = api.get("/api/v1/health", HTTP_X_REQUEST_ID="proxy-7f3a.91:2")

    assert reply["X-Request-ID"] == "proxy-7f3a.91:2"
    assert [line["request_id"] for line in log_lines.access()] == ["proxy-7f3a.91:2"]


@pytest.mark.parametrize(
    "offered",
    ["", "short", "x" * 129, "has space in it", "semi;colon-id", "ünïcode-id-12", "a\r\nSet-Cookie"],
)
def test_an_odd_request_id_is_replaced_by_a_new_one(api, log_lines, offered):
    reply = api.get("/api/v1/health", HTTP_X_REQUEST_ID=offered)

    new = reply["X-Request-ID"]
    assert new != offered and len(new) == 32 and int(new, 16) >= 0
    assert log_lines.access()[0]["request_id"] == new


def test_without_a_request_id_each_request_gets_its_own(api, log_lines):
    first, second = api.get("/api/v1/health"), api.get("/api/v1/health")

    assert first["X-Request-ID"] != second["X-Request-ID"]
    assert [line["request_id"] for line in log_lines.access()] == [
        first["X-Request-ID"],
        second["X-Request-ID"],
    ]


def test_error_envelopes_carry_the_request_id_too(api, machine, expect_api_error, log_lines):
    not_found = api.get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID="req-not-found")
    unauthorized = api.post(
        f"/api/v1/devices/{machine.device.pk}/status", {"state": "idle"}, format="json",
        HTTP_AUTHORIZATION="Device wrong-token", HTTP_X_REQUEST_ID="req-wrong-token",
    )  # fmt: skip
    invalid = machine.post(
        f"/api/v1/devices/{machine.device.pk}/status", {"state": "dancing"}, format="json",
        HTTP_X_REQUEST_ID="req-invalid-state",
    )  # fmt: skip

    expect_api_error(not_found, 404, "NOT_FOUND")
    expect_api_error(unauthorized, 401, "UNAUTHORIZED")
    expect_api_error(invalid, 400, "VALIDATION_ERROR")
    assert [r["X-Request-ID"] for r in (not_found, unauthorized, invalid)] == [
        "req-not-found", "req-wrong-token", "req-invalid-state"
    ]  # fmt: skip
    statuses = {line["request_id"]: line["status"] for line in log_lines.access()}
    assert statuses == {"req-not-found": 404, "req-wrong-token": 401, "req-invalid-state": 400}


def test_the_access_line_names_method_path_status_duration_user_and_merchant(
    staff_client, merchant, log_lines
):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])

    reply = viewer.get("/api/v1/orders?payment_status=paid&page=2", HTTP_X_REQUEST_ID="req-orders-list")

    (line,) = log_lines.access()
    assert line["request_id"] == reply["X-Request-ID"] == "req-orders-list"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/orders", reply.status_code)
    assert (line["user_id"], line["merchant_id"]) == (viewer.user.pk, merchant.pk)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert "payment_status" not in log_lines.text()
    assert "device_id" not in line


def test_a_machines_access_line_names_the_machine_and_its_merchant(machine, log_lines):
    reply = beat(machine, FULL_HEARTBEAT)

    (line,) = log_lines.access()
    assert reply.status_code == 200
    assert (line["device_id"], line["merchant_id"]) == (machine.device.pk, machine.device.merchant_id)
    assert "user_id" not in line


@needs_redis
def test_a_quiet_heartbeat_answers_with_its_request_id_and_logs_the_machine(
    machine, log_lines, django_assert_num_queries
):
    beat(machine, FULL_HEARTBEAT)

    with django_assert_num_queries(0):  # the quiet lane: no query for the line either
        reply = machine.post(
            f"/api/v1/devices/{machine.device.pk}/status", {**FULL_HEARTBEAT, "temperature_c": 92.6},
            format="json", HTTP_X_REQUEST_ID="req-quiet-beat",
        )  # fmt: skip

    assert reply.status_code == 200 and reply["X-Request-ID"] == "req-quiet-beat"
    quiet = log_lines.access()[-1]
    assert (quiet["device_id"], quiet["merchant_id"]) == (machine.device.pk, machine.device.merchant_id)
    assert quiet["path"] == f"/api/v1/devices/{machine.device.pk}/status" and quiet["status"] == 200


def test_no_token_or_secret_reaches_a_line(api, merchant, materials, log_lines):
    registered = api.post(
        "/api/v1/devices/register",
        {"serial": "CM2K-LOG-1", "model": "CM-2000", "firmware": "1.4.2",
         "provisioning_secret": merchant.provisioning_secret},
        format="json",
    )  # fmt: skip
    token = registered.json()["data"]["token"]
    device_id = registered.json()["data"]["device_id"]
    api.post(
        f"/api/v1/devices/{device_id}/status",
        FULL_HEARTBEAT,
        format="json",
        HTTP_AUTHORIZATION=f"Device {token}",
    )
    api.get(f"/api/v1/jobs/1/download?signature={token}", HTTP_AUTHORIZATION=f"Device {token}")

    assert registered.status_code == 201 and len(log_lines.access()) == 3
    assert token not in log_lines.text() and token[:8] not in log_lines.text()
    assert merchant.provisioning_secret not in log_lines.text()


def test_a_traceback_stays_inside_its_json_line(api, log_lines):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("coffeeshop.crash").exception("it broke")

    (line,) = log_lines.all()
    assert line["message"] == "it broke" and "RuntimeError: boom" in line["exc_info"]


def test_the_text_format_names_the_request_in_brackets(api, settings):
    formatter = production_formatter("text")
    record = logging.LogRecord("coffeeshop.access", logging.INFO, __file__, 1, "GET / 200", None, None)
    record.request_id = "req-in-text"
    outside = logging.LogRecord("celery.beat", logging.INFO, __file__, 1, "Scheduler: Sending", None, None)
    outside.request_id = None

    assert formatter.format(record).endswith("INFO coffeeshop.access [req-in-text] GET / 200")
    assert formatter.format(outside).endswith("INFO celery.beat Scheduler: Sending")


def test_the_request_id_a_shed_request_offers_is_read_from_its_head():
    head = b"POST /api/v1/devices/4/status HTTP/1.1\r\nHost: x\r\nx-request-ID:  lb-1234abcd \r\n\r\n{}"

    assert offered_request_id(head) == "lb-1234abcd"
    assert offered_request_id(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") is None
    assert accepted_request_id(offered_request_id(b"GET / HTTP/1.1\r\nX-Request-ID: a b\r\n")) != "a b"


def test_a_shed_503_carries_a_request_id():
    worker = SheddingSyncWorker.__new__(SheddingSyncWorker)  # only its reply and its count are used here
    worker.replies = shed_replies()
    worker.max_queue_wait_ms, worker.shed_since_log, worker.longest_wait_ms, worker.logged_at = 100, 0, 0, 0.0
    server, client = socket.socketpair()
    request = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Request-ID: lb-shed-0001\r\n\r\n"
    client.sendall(request)
    server.recv(len(request), socket.MSG_PEEK)

    worker.shed(server, request, waited_ms=900)
    reply = client.recv(65536)
    client.close()

    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503") and b"\r\nX-Request-ID: lb-shed-0001" in head
    assert json.loads(body)["error"]["code"] == "UNAVAILABLE"


def test_a_task_queued_outside_any_request_gets_an_id_of_its_own():
    """A shell's or a command's tasks: each send its own id, so its worker lines still join up."""
    first, second, inside = {}, {}, {}
    request_id.add_request_id_header(headers=first)
    request_id.add_request_id_header(headers=second)
    with request_id.holding("req-12345678"):
        request_id.add_request_id_header(headers=inside)
    assert request_id.TASK_HEADER in first and first != second
    assert inside == {request_id.TASK_HEADER: "req-12345678"}
