"""The lone order's quick lane (coffeeshop.protocol.views.quick_order): what a machine sees must not change.

Two checks. The lane's reader takes only what `OrderSerializer` takes, reading it to the same values.
And a differential run: a corpus of orders (valid ones, every field rule of protocol "Orders" broken,
1.1 limits, undefined methods, duplicates, conflicting resends, another machine's path, a throttled
machine, a revoked token) is posted once with the lane and once with every order through DRF; the
replies (status, body, the headers a machine reads) and what the database holds afterwards must be
identical. The lane itself needs PostgreSQL and Redis; elsewhere both runs take the full path.
"""

import copy
import json
import os

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from coffeeshop.api.throttling import DeviceRateThrottle
from coffeeshop.protocol.plain_orders import plain_order_input
from coffeeshop.protocol.serializers import OrderSerializer
from devices.services import revoke_device_token
from orders.models import Order, OrderItem, PaymentMethod
from orders.services.rollups import ROLLUP_MODELS
from tests.conftest import protocol_order
from tests.factories import DeviceFactory, LocationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

LANE_RUNS = bool(os.environ.get("REDIS_URL", "").strip())
ITEM = protocol_order()["items"][0]


def order(order_id="Q-1", *, item=None, payment=None, **fields):
    body = protocol_order(order_id, **fields)
    if item is not None:
        body["items"] = [{**ITEM, **item}]
        body["total"] = fields.get("total", body["total"])
    if payment is not None:
        body["payment"] = {**body["payment"], **payment}
    return body


def without(body, *path):
    body = copy.deepcopy(body)
    target = body
    for name in path[:-1]:
        target = target[name]
    del target[path[-1]]
    return body


TWO_LATTES_AND_A_MOCHA = [
    {"product_id": "latte", "name": "Latte", "qty": 1, "unit_price": "18.00"},
    {"product_id": "mocha", "name": "Mocha", "qty": 2, "unit_price": "20.50", "options": {"x": None}},
    {"product_id": "latte", "name": "Latte", "qty": 1, "unit_price": "18.00", "recipe_version": "4"},
]

# Orders a machine may send, each with a new order id unless the point is a resend.
CORPUS = [
    order("Q-1"),
    order("Q-1"),  # the same again: a duplicate
    order("Q-1", total="18.00", item={"qty": 1}),  # the same id, other content: 409
    order("Q-2", created_at="2026-11-24T00:14:31Z", payment={"status": "unpaid"}),
    order("Q-3", payment={"status": "failed", "transaction_id": ""}),
    order("Q-4", is_test=True),
    order("Q-5", items=TWO_LATTES_AND_A_MOCHA, total="77.00"),
    order("Q-6", payment={"method": "alipay"}, currency="USD", created_at="2026-11-24T23:59:59.123456-05:00"),
    order("Q-7", payment={"method": "meituan"}),  # a method nobody defined: an exception
    order("Q-8", payment={"method": "corp-card"}),  # defined by the merchant (below)
    order("Q-9", item={"name": "拿铁 ☕", "options": {"杯": "大", "n": 2**63 - 1}}),
    order("Q-10", item={"name": " Latte "}),  # trimmed by the full path
    order("Q-11", total="36", item={"unit_price": "18"}),
    without(order("Q-12"), "is_test"),
    without(without(order("Q-13"), "payment", "transaction_id"), "items", 0, "options"),
    {**order("Q-14"), "future_field": {"a": [1]}},
    order("Q-15", total="0.00", item={"unit_price": "0.00"}),
    order(  # alone in its hour and day: the rollups' amounts have the order's precision
        "Q-16",
        total="9999999999.00",
        item={"qty": 1, "unit_price": "9999999999.00"},
        created_at="2026-10-01T10:00:00+08:00",
    ),
    # Every field rule broken.
    order("bad id!"),
    order("Q" * 65),
    order(123),
    order("Q-20", created_at="2026-11-24T08:14:31"),
    order("Q-21", created_at="yesterday"),
    order("Q-22", created_at=1732436071),
    order("Q-23", created_at="9999-12-31T23:59:59-14:00"),
    order("Q-24", currency="cny"),
    order("Q-25", currency=156),
    order("Q-26", total=36.0),
    order("Q-27", total="35.00"),
    order("Q-28", total="-36.00"),
    order("Q-29", total="36.001"),
    order("Q-30", total="12345678901.00"),
    order("Q-31", payment=None) | {"payment": "wechat"},
    without(order("Q-32"), "payment"),
    order("Q-33", payment={"method": "WeChat"}),
    order("Q-34", payment={"status": "refunded"}),
    order("Q-35", payment={"status": None}),
    order("Q-36", payment={"transaction_id": "x" * 129}),
    order("Q-37", payment={"transaction_id": 42}),
    order("Q-38", items=[]),
    order("Q-39", items=[ITEM] * 51, total=f"{51 * 36}.00"),
    order("Q-40", items="latte"),
    order("Q-41", item={"qty": 0}, total="0.00"),
    order("Q-42", item={"qty": 1001}, total="18018.00"),
    order("Q-43", item={"qty": "2"}),
    order("Q-44", item={"qty": True}, total="18.00"),
    order("Q-45", item={"qty": 2.0}),
    order("Q-46", item={"qty": 2**64}),
    order("Q-47", item={"unit_price": 18.0}),
    order("Q-48", item={"name": ""}),
    order("Q-49", item={"product_id": "p" * 65}),
    order("Q-50", item={"recipe_version": 3}),
    order("Q-51", item={"options": ["large"]}),
    order("Q-52", item={"options": {"size": "lar\x00ge"}}),
    order("Q-53", item={"options": {"size": {"ml": 400}}}),
    order("Q-54", is_test="false"),
    without(order("Q-55"), "order_id"),
    without(order("Q-56"), "items", 0, "unit_price"),
    [order("Q-57")],
    "Q-58",
    {"orders": [order("Q-59"), order("bad id!")]},
]
RAW_BODIES = [b"{not json", b'{"order_id": "Q-60", ' + b'"x": [' * 40 + b"]" * 40 + b"}", b""]


def _nested(depth):
    return {"order_id": "Q-61", "deep": json.loads("[" * depth + "]" * depth)}


def _reply(response) -> tuple:
    return (
        response.status_code,
        response.content,
        response.get("Content-Type"),
        response.get("X-Request-ID"),
        response.get("Retry-After"),
        response.get("Vary"),
        response.get("Allow"),
    )


def _database() -> dict:
    skip = {"id", "received_at", "exception_marked_at"}
    orders = [
        {k: v for k, v in row.items() if k not in skip}
        for row in Order.objects.order_by("device_id", "machine_order_id").values()
    ]
    items = list(
        OrderItem.objects.order_by("order__device_id", "order__machine_order_id", "position").values(
            "order__machine_order_id", "position", "product_id", "name", "qty", "unit_price",
            "recipe_version", "options",
        )
    )  # fmt: skip
    rollups = {
        model.__name__: sorted(
            (tuple(v for k, v in row.items() if k != "id") for row in model.objects.values()), key=str
        )
        for model in ROLLUP_MODELS
    }
    return {"orders": orders, "items": items, "rollups": rollups}


def _forget_everything():
    Order.objects.all().delete()
    for model in ROLLUP_MODELS:
        model.objects.all().delete()


def _play(machine, other_device, settings, *, lane: bool) -> tuple[list, dict]:
    settings.ORDER_QUICK_LANE = lane
    _forget_everything()
    url = f"/api/v1/devices/{machine.device.pk}/orders/create"
    replies = []
    for n, body in enumerate([*CORPUS, _nested(33)]):
        replies.append(_reply(machine.post(url, body, format="json", HTTP_X_REQUEST_ID=f"request-{n}")))
    for n, raw in enumerate(RAW_BODIES):
        replies.append(
            _reply(machine.post(url, raw, content_type="application/json", HTTP_X_REQUEST_ID=f"raw-body-{n}"))
        )
    other_url = f"/api/v1/devices/{other_device.pk}/orders/create"
    replies.append(
        _reply(machine.post(other_url, order("Q-70"), format="json", HTTP_X_REQUEST_ID="other-machine"))
    )
    return replies, _database()


def test_the_reader_takes_only_what_the_serializer_takes_and_reads_it_alike():
    taken = 0
    for body in [*CORPUS, _nested(3)]:
        plain = plain_order_input(copy.deepcopy(body))
        serializer = OrderSerializer(data=copy.deepcopy(body))
        if plain is None:
            continue
        taken += 1
        assert serializer.is_valid(), (body, serializer.errors)
        assert plain == OrderSerializer.to_input(serializer.validated_data), body
        assert plain.content_hash() == OrderSerializer.to_input(serializer.validated_data).content_hash()
    assert taken >= 15  # the common orders do take the lane


def test_a_lone_order_is_answered_and_recorded_alike_with_the_lane_and_without(machine, settings):
    PaymentMethod.objects.create(merchant=machine.device.merchant, code="corp-card", name="Corp card")
    machine.device.location = LocationFactory(merchant=machine.device.merchant)
    machine.device.package_version = "2026.11.3"
    machine.device.save()
    other_device = DeviceFactory(merchant=machine.device.merchant)

    without_lane = _play(machine, other_device, settings, lane=False)
    with_lane = _play(machine, other_device, settings, lane=True)

    assert with_lane[0] == without_lane[0]
    assert with_lane[1] == without_lane[1]
    assert [r[0] for r in with_lane[0][:3]] == [201, 200, 409]
    assert sum(r[0] == 201 for r in with_lane[0]) >= 15
    assert with_lane[1]["rollups"]["SalesHour"], "sold orders reach the rollups"


def _forget_request_counts(settings):
    from django.core.cache import cache

    from coffeeshop.redis import delete_matching, get_redis

    cache.clear()
    if get_redis() is not None:
        delete_matching(get_redis(), f"{settings.CACHES['default'].get('KEY_PREFIX', 'coffeeshop')}:*rate*")


def test_a_throttled_machine_and_a_revoked_token_are_answered_alike(
    machine, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(DeviceRateThrottle, "THROTTLE_RATES", {"device": "3/hour"})
    url = f"/api/v1/devices/{machine.device.pk}/orders/create"

    def play(lane):
        settings.ORDER_QUICK_LANE = lane
        _forget_everything()
        _forget_request_counts(settings)
        replies = [machine.post(url, order(f"T-{n}"), format="json") for n in range(5)]
        return [
            (r.status_code, r.json().get("error", {}).get("code"), r.has_header("Retry-After"))
            for r in replies
        ]

    without_lane, with_lane = play(False), play(True)
    assert with_lane == without_lane
    assert with_lane == [(201, None, False)] * 3 + [(429, "THROTTLED", True)] * 2
    assert Order.objects.count() == 3

    with django_capture_on_commit_callbacks(execute=True):  # the token's cached identity forgotten
        revoke_device_token(machine.device)
    monkeypatch.setattr(DeviceRateThrottle, "THROTTLE_RATES", {"device": "1000/min"})
    answers = []
    for lane in (False, True):
        settings.ORDER_QUICK_LANE = lane
        answers.append(_reply(machine.post(url, order("R-1"), format="json", HTTP_X_REQUEST_ID="revoked-1")))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401
    assert not Order.objects.filter(machine_order_id="R-1").exists()


@pytest.mark.skipif(not LANE_RUNS, reason="the lane needs Redis (REDIS_URL) and PostgreSQL")
def test_the_lane_takes_a_new_order_in_one_database_round_trip(machine):
    if connection.vendor != "postgresql":
        pytest.skip(reason="the lane writes with PostgreSQL's statements")
    url = f"/api/v1/devices/{machine.device.pk}/orders/create"
    machine.post(url, order("W-0"), format="json")  # the token's identity is cached from now on
    with CaptureQueriesContext(connection) as queries:
        reply = machine.post(url, order("W-1"), format="json")
    assert reply.status_code == 201
    # Inside a test's transaction the lane adds a savepoint and its release; in production it does not.
    sent = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(sent) == 1, sent
    assert Order.objects.get(machine_order_id="W-1").items.count() == 1


@pytest.mark.skipif(not LANE_RUNS, reason="the lane needs Redis (REDIS_URL) and PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_lone_order_on_a_connection_its_server_dropped_is_taken_on_a_new_one(machine):
    """As after a PostgreSQL restart that this process slept through: its persistent connection is
    dead, and the first order must not be the one that pays for it with a 503."""
    if connection.vendor != "postgresql":
        pytest.skip(reason="the lane writes with PostgreSQL's statements")
    url = f"/api/v1/devices/{machine.device.pk}/orders/create"
    machine.post(url, order("D-0"), format="json")  # the token's identity is cached from now on
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (dying,) = cursor.fetchone()
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [dying])

    reply = machine.post(url, order("D-1"), format="json")

    assert reply.status_code == 201, reply.content
    assert Order.objects.filter(machine_order_id="D-1").count() == 1
    assert machine.post(url, order("D-1"), format="json").status_code == 200  # and its resend a duplicate
