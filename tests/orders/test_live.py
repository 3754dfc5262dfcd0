"""Sales and refunds reach the staff live socket (/ws/live/) as they happen, scoped by merchant.

Runs with the in-memory channel layer (no REDIS_URL) and with Redis (REDIS_URL set).
"""

import importlib
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from accounts.models import Role
from orders.services import refund_order
from tests.conftest import protocol_order
from tests.factories import DeviceFactory, OrderFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_passwords")]

ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture
def application(monkeypatch):
    """The ASGI application. Its module sets env defaults for ASGI servers on import; they are put back."""
    for name in ("DB_POOL", "DB_CONN_MAX_AGE"):
        monkeypatch.delenv(name, raising=False)
    return importlib.import_module("coffeeshop.asgi").application


@pytest.fixture(autouse=True)
def channel_layer(settings):
    """A channel layer of this test alone: with Redis, under a prefix no other test run shares (group
    names carry merchant ids, which repeat across test databases); built afresh for this event loop."""
    if settings.REDIS_URL:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": f"test-orders-{uuid.uuid4().hex[:12]}"},
            }
        }
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
async def _close_connections_of_sync_thread():
    """Database work called from async code runs in one shared thread: close its connection, or the test
    database cannot be dropped at the end of the run."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def listen(application, make_user):
    """listen(role, merchants, **user_fields) -> a connected staff socket, its hello already read."""
    sockets = []

    def session_cookie(user):
        client = Client()
        client.force_login(user)
        return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())

    async def connect(role=Role.OPS, merchants=(), **fields):
        user = await sync_to_async(make_user)(role, list(merchants), **fields)
        communicator = WebsocketCommunicator(
            application, "/ws/live/", headers=[ORIGIN, await sync_to_async(session_cookie)(user)]
        )
        connected, _ = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
        communicator.user = user
        sockets.append(communicator)
        return communicator

    yield connect
    # The communicators' event loop is gone by teardown; each test disconnects its own (see `hang_up`).


async def hang_up(*communicators):
    for communicator in communicators:
        await communicator.disconnect()


async def next_event(communicator, event, timeout=5):
    """The next message of type `event` (the socket may also carry device status updates)."""
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        if message["type"] == event:
            return message["data"]


async def events_within(communicator, seconds=1.0):
    """Every message the socket receives within `seconds` of quiet."""
    messages = []
    while not await communicator.receive_nothing(timeout=seconds):
        messages.append(await communicator.receive_json_from())
    return messages


def post_orders(client, body):
    return sync_to_async(client.post)(
        f"/api/v1/devices/{client.device.pk}/orders/create", body, format="json"
    )


async def test_a_new_order_reaches_its_merchants_staff_and_platform_staff_only(
    listen, machine, merchant, other_merchant
):
    ours = await listen(Role.VIEWER, [merchant])
    platform = await listen(Role.VIEWER, is_platform_staff=True)
    theirs = await listen(Role.OPS, [other_merchant])

    reply = await post_orders(machine, protocol_order("LIVE-1"))
    assert reply.status_code == 201, reply.content

    heard = await next_event(ours, "orders.created")
    order_pk = await sync_to_async(lambda: machine.device.orders.get().pk)()
    assert heard == {
        "device_id": machine.device.pk,
        "orders": [
            {
                "id": order_pk,
                "order_id": "LIVE-1",
                "total": "36.00",
                "currency": "CNY",
                "payment_method": "wechat",
                "payment_status": "paid",
            }
        ],
    }
    assert await next_event(platform, "orders.created") == heard
    leaked = await events_within(theirs)
    await hang_up(ours, platform, theirs)
    assert [m for m in leaked if m["type"].startswith("order")] == []
    assert "LIVE-1" not in str(leaked)


async def test_a_backlog_is_announced_once_with_only_the_orders_it_added(listen, machine, merchant):
    assert (await post_orders(machine, protocol_order("OLD"))).status_code == 201
    ours = await listen(Role.OPS, [merchant])

    reply = await post_orders(
        machine,
        {
            "orders": [
                protocol_order("OLD"),  # duplicate: announced when it arrived, not again
                protocol_order("NEW-1"),
                protocol_order("BAD", total="1.00"),
                protocol_order("NEW-2", payment={"method": "cash", "status": "unpaid"}),
            ]
        },
    )
    assert reply.status_code == 200, reply.content

    heard = await next_event(ours, "orders.created")
    after = await events_within(ours)
    await hang_up(ours)
    assert [(o["order_id"], o["payment_status"]) for o in heard["orders"]] == [
        ("NEW-1", "paid"),
        ("NEW-2", "unpaid"),
    ]
    assert [m for m in after if m["type"] == "orders.created"] == []


async def test_a_duplicate_order_is_not_announced_again(listen, machine, merchant):
    assert (await post_orders(machine, protocol_order("ONCE"))).status_code == 201
    ours = await listen(Role.OPS, [merchant])

    assert (await post_orders(machine, protocol_order("ONCE"))).status_code == 200

    heard = await events_within(ours)
    await hang_up(ours)
    assert [m for m in heard if m["type"] == "orders.created"] == []


async def test_a_refund_reaches_its_merchants_staff_and_no_one_elses(
    listen, make_user, merchant, other_merchant
):
    order = await sync_to_async(OrderFactory)(
        device=await sync_to_async(DeviceFactory)(merchant=merchant), total=Decimal("36.00")
    )
    ours = await listen(Role.VIEWER, [merchant])
    theirs = await listen(Role.OPS, [other_merchant])
    ops = await sync_to_async(make_user)(Role.OPS, [merchant])

    refund = await sync_to_async(refund_order)(order.pk, user=ops, reason="cold", amount=Decimal("10.00"))

    heard = await next_event(ours, "order.refunded")
    leaked = await events_within(theirs)
    await hang_up(ours, theirs)
    assert heard == {
        "id": order.pk,
        "order_id": order.machine_order_id,
        "refund_id": refund.pk,
        "amount": "10.00",
        "status": "succeeded",
        "payment_status": "partially_refunded",
        "refunded_total": "10.00",
    }
    assert [m for m in leaked if m["type"].startswith("order")] == []


async def test_a_refund_made_through_the_api_is_announced(listen, merchant, staff_client):
    order = await sync_to_async(OrderFactory)(
        device=await sync_to_async(DeviceFactory)(merchant=merchant), total=Decimal("18.00")
    )
    ours = await listen(Role.VIEWER, [merchant])
    ops = await sync_to_async(staff_client)(Role.OPS, [merchant])

    reply = await sync_to_async(ops.post)(
        f"/api/v1/orders/{order.pk}/manual_refund", {"reason": "spilt"}, format="json"
    )
    assert reply.status_code == 201, reply.content

    heard = await next_event(ours, "order.refunded")
    await hang_up(ours)
    assert (heard["id"], heard["amount"], heard["payment_status"], heard["refunded_total"]) == (
        order.pk,
        "18.00",
        "refunded",
        "18.00",
    )
