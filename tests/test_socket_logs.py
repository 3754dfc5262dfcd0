"""Every WebSocket connection has a request id held for its whole life and one access line when it
ends, naming who it was: the staff socket and the machine socket, accepted and refused."""

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from accounts.models import Role
from coffeeshop.asgi import application
from coffeeshop.request_id import TASK_HEADER, add_request_id_header
from coffeeshop.socket_logs import SocketRequestIdMiddleware
from tests.test_request_logs import log_lines  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
async def _close_connections():
    yield
    await sync_to_async(connections.close_all)()


def socket_lines(log_lines) -> list[dict]:  # noqa: F811
    return [line for line in log_lines.access() if line["method"] == "WS"]


def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def test_a_staff_socket_logs_its_request_id_user_merchant_and_close(log_lines, make_user, merchant):  # noqa: F811
    user = await sync_to_async(make_user)(Role.OPS, [merchant])
    socket = WebsocketCommunicator(
        application,
        "/ws/live/",
        headers=[ORIGIN, await sync_to_async(session_cookie)(user), (b"x-request-id", b"live-page-0001")],
    )
    connected, _ = await socket.connect()
    assert connected
    await socket.receive_json_from(timeout=5)
    await socket.disconnect(code=1001)

    (line,) = socket_lines(log_lines)
    assert line["request_id"] == "live-page-0001"
    assert (line["path"], line["status"], line["close_code"]) == ("/ws/live/", 101, 1001)
    assert (line["user_id"], line["merchant_id"]) == (user.pk, merchant.pk)
    assert line["duration_ms"] > 0


async def test_a_refused_staff_socket_logs_403_and_the_reason(log_lines):  # noqa: F811
    socket = WebsocketCommunicator(application, "/ws/live/", headers=[ORIGIN])
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()  # what the server does once it refused the handshake

    (line,) = socket_lines(log_lines)
    assert (line["status"], line["close_code"]) == (403, 4401)
    assert "user_id" not in line and len(line["request_id"]) == 32  # a new id, none was offered


async def test_a_machine_socket_logs_the_machine_and_holds_its_id_for_its_lines(log_lines, registered):  # noqa: F811
    device = registered.device
    socket = WebsocketCommunicator(
        application,
        f"/ws/devices/{device.pk}/",
        headers=[(b"authorization", f"Device {registered.token}".encode()), (b"x-request-id", b"odd id!")],
    )
    connected, _ = await socket.connect()
    assert connected
    await socket.disconnect()

    (line,) = socket_lines(log_lines)
    assert (line["device_id"], line["merchant_id"]) == (device.pk, device.merchant_id)
    assert line["request_id"] != "odd id!" and line["status"] == 101


async def test_what_a_socket_logs_and_queues_in_its_life_carries_its_id(log_lines):  # noqa: F811
    async def consumer(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(0)  # another turn of the loop, as a consumer's later work is
        logging.getLogger("tests.socket").info("working")
        headers: dict = {}
        add_request_id_header(headers=headers)  # a task queued now
        await send({"type": "websocket.send", "text": headers[TASK_HEADER]})
        await receive()

    socket = WebsocketCommunicator(
        SocketRequestIdMiddleware(consumer), "/ws/x/", headers=[(b"x-request-id", b"socket-life-01")]
    )
    assert (await socket.connect())[0]
    queued_with = await socket.receive_from()
    await socket.disconnect()

    (working,) = [line for line in log_lines.all() if line["logger"] == "tests.socket"]
    assert working["request_id"] == queued_with == "socket-life-01"


async def test_another_machines_socket_is_refused_and_logged_with_the_caller(log_lines, registered):  # noqa: F811
    socket = WebsocketCommunicator(
        application,
        f"/ws/devices/{registered.device.pk + 1000}/",
        headers=[(b"authorization", f"Device {registered.token}".encode())],
    )
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()  # what the server does once it refused the handshake

    (line,) = socket_lines(log_lines)
    assert line["status"] == 403 and line["device_id"] == registered.device.pk
