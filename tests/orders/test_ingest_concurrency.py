"""Retries racing each other: a machine that times out and resends must never create a sale twice.

Real threads, each with its own database connection (the test client in each thread), started together
by a barrier, on PostgreSQL: SQLite serialises every writer, so it cannot show what these prove.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from orders.models import Order, OrderItem
from tests.conftest import protocol_order

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

RETRIES = 50


@pytest.fixture(autouse=True)
def _postgres_only(db):
    if connection.vendor != "postgresql":
        pytest.skip(reason=f"concurrent inserts need PostgreSQL (this run uses {connection.vendor})")


@pytest.fixture(autouse=True)
def _unthrottled(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "device": "100000/min",
        },
    }


def race(token, device_id, bodies):
    """POST every body at once from its own thread and connection; returns (status, data) per body."""
    barrier = threading.Barrier(len(bodies))

    def send(body):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
            barrier.wait(timeout=30)
            reply = client.post(f"/api/v1/devices/{device_id}/orders/create", body, format="json")
            return reply.status_code, reply.json()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_50_concurrent_retries_of_one_order_create_exactly_one_sale(machine):
    body = protocol_order("RACE-1", payment={"method": "race_pay", "status": "paid"})

    replies = race(machine.token, machine.device.pk, [body] * RETRIES)

    statuses = sorted(status for status, _ in replies)
    assert statuses == [200] * (RETRIES - 1) + [201], replies
    assert sorted(data["data"]["result"] for _, data in replies) == ["accepted"] + ["duplicate"] * (
        RETRIES - 1
    )
    assert {data["data"]["order_id"] for _, data in replies} == {"RACE-1"}
    assert Order.objects.filter(machine_order_id="RACE-1").count() == 1
    assert OrderItem.objects.filter(order__machine_order_id="RACE-1").count() == 1
    assert list(Order.objects.values_list("exception_reason", flat=True)) == ["unknown_payment_method"]


def test_50_concurrent_retries_with_one_changed_copy_keep_the_first_and_refuse_the_rest(machine):
    """Whichever copy wins, every other is a duplicate of it or a conflict with it, never a second row."""
    same = protocol_order("RACE-2")
    changed = protocol_order("RACE-2", is_test=True)

    replies = race(machine.token, machine.device.pk, [same] * (RETRIES - 1) + [changed])

    created = [(s, d) for s, d in replies if s == 201]
    assert len(created) == 1, replies
    stored = Order.objects.get(machine_order_id="RACE-2")
    won_with_changed = stored.is_test
    statuses = sorted(s for s, _ in replies)
    if won_with_changed:
        assert statuses == [201] + [409] * (RETRIES - 1)
    else:
        assert statuses == [200] * (RETRIES - 2) + [201, 409]
    assert OrderItem.objects.filter(order=stored).count() == 1


def test_a_backlog_racing_single_retries_of_its_orders_records_each_order_once(machine):
    orders = [
        protocol_order(f"LOG-{i:03d}", payment={"method": "backlog_pay", "status": "paid"})
        for i in range(100)
    ]
    singles = [orders[i] for i in (0, 17, 50, 99)] * 5

    replies = race(machine.token, machine.device.pk, [{"orders": orders}, *singles, {"orders": orders}])

    backlogs = [
        data["data"]["results"] for status, data in replies if status == 200 and "results" in data["data"]
    ]
    assert len(backlogs) == 2, replies
    for results in backlogs:
        assert [r["order_id"] for r in results] == [o["order_id"] for o in orders]
        assert {r["result"] for r in results} <= {"accepted", "duplicate"}
    single_results = [data["data"]["result"] for status, data in replies if "results" not in data["data"]]
    assert len(single_results) == 20
    assert {status for status, data in replies if "results" not in data["data"]} <= {200, 201}
    # Every order was accepted exactly once, by whichever request got there first.
    accepted = [r["order_id"] for results in backlogs for r in results if r["result"] == "accepted"]
    accepted += [data["data"]["order_id"] for status, data in replies if status == 201]
    assert sorted(accepted) == [o["order_id"] for o in orders]
    assert Order.objects.filter(device=machine.device).count() == 100
    assert OrderItem.objects.filter(order__device=machine.device).count() == 100
    assert Order.objects.filter(device=machine.device, is_exception=True).count() == 100
