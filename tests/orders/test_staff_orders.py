"""GET /api/v1/orders and /api/v1/orders/{id}: the sales staff see, filtered and scoped to their merchants."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import Role
from orders.models import Order, Refund
from orders.services import refund_order
from tests.factories import DeviceFactory, LocationFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def at(day, hour=10, minute=0):
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def sales(merchant, other_merchant):
    """Five sales: four of Brew Co on three machines in two locations (and one with none), one of Other
    Beans. Machine clocks drift: every machine time is a day or more off the server's receive time."""
    lobby = LocationFactory(merchant=merchant, name="Lobby")
    office = LocationFactory(merchant=merchant, name="Office")
    devices = {
        "lobby": DeviceFactory(merchant=merchant, serial="CM2K-000001", location=lobby),
        "office": DeviceFactory(merchant=merchant, serial="CM2K-000002", location=office),
        "nowhere": DeviceFactory(merchant=merchant, serial="CM2K-000003", location=None),
        "other": DeviceFactory(merchant=other_merchant, serial="CM2K-900001"),
    }

    def sale(order_id, device, received_at, method, status, *, is_exception=False, total="18.00"):
        return OrderFactory(
            machine_order_id=order_id,
            device=devices[device],
            received_at=received_at,
            device_created_at=received_at + timedelta(days=5),
            payment_method=method,
            payment_status=status,
            is_exception=is_exception,
            exception_reason="no cup" if is_exception else "",
            total=Decimal(total),
            transaction_id=f"tx-{order_id}",
        )

    orders = {
        "A": sale("A", "lobby", at(20), "wechat", "paid"),
        "B": sale("B", "lobby", at(21), "alipay", "unpaid"),
        "C": sale("C", "office", at(22), "card", "failed", is_exception=True),
        "D": sale("D", "nowhere", at(23), "wechat", "refunded", total="36.00"),
        "E": sale("E", "other", at(21, 12), "wechat", "paid", is_exception=True),
    }
    return {
        "orders": orders,
        "devices": devices,
        "lobby": lobby,
        "office": office,
        "merchant": merchant,
        "other": other_merchant,
    }


def data(reply):
    assert reply.status_code == 200, reply.content
    return reply.json()["data"]


def listed(reply):
    return [order["order_id"] for order in data(reply)["results"]]


def resolve(sales, params):
    """Test parameters name things symbolically ("device:lobby"); the ids exist only once created."""
    kinds = {
        "device": sales["devices"],
        "location": {"lobby": sales["lobby"], "office": sales["office"]},
        "merchant": {"brew": sales["merchant"], "other": sales["other"]},
    }
    resolved = {}
    for name, value in params.items():
        kind, _, key = str(value).partition(":")
        resolved[name] = kinds[kind][key].pk if kind in kinds else value
    return resolved


# --- Every filter returns exactly the matching orders -----------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["D", "C", "E", "B", "A"]),
        ({"from": "2026-11-21T10:00:00Z"}, ["D", "C", "E", "B"]),  # inclusive
        ({"from": "2026-11-21T18:00:00+08:00"}, ["D", "C", "E", "B"]),  # the same instant, another offset
        ({"to": "2026-11-22T10:00:00Z"}, ["E", "B", "A"]),  # exclusive
        ({"from": "2026-11-21T10:00:01Z", "to": "2026-11-23T00:00:00Z"}, ["C", "E"]),
        ({"from": "2026-12-01T00:00:00Z"}, []),
        ({"device_id": "device:lobby"}, ["B", "A"]),
        ({"device_id": "device:other"}, ["E"]),
        ({"merchant_id": "merchant:brew"}, ["D", "C", "B", "A"]),
        ({"merchant_id": "merchant:other"}, ["E"]),
        ({"location": "location:lobby"}, ["B", "A"]),
        ({"location": "location:office"}, ["C"]),
        ({"payment_method": "wechat"}, ["D", "E", "A"]),
        ({"payment_method": "card"}, ["C"]),
        ({"payment_method": "meituan_pay"}, []),
        ({"payment_status": "paid"}, ["E", "A"]),
        ({"payment_status": "unpaid"}, ["B"]),
        ({"payment_status": "failed"}, ["C"]),
        ({"payment_status": "refunded"}, ["D"]),
        ({"payment_status": "partially_refunded"}, []),
        ({"exception": "true"}, ["C", "E"]),
        ({"exception": "false"}, ["D", "B", "A"]),
        ({"merchant_id": "merchant:brew", "payment_method": "wechat"}, ["D", "A"]),
        ({"location": "location:lobby", "payment_status": "paid", "from": "2026-11-20T00:00:00Z"}, ["A"]),
        ({"query": "tx-C"}, ["C"]),
        ({"query": "CM2K-000001"}, ["B", "A"]),
    ],
    ids=lambda value: "&".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else None,
)
def test_each_filter_lists_exactly_the_matching_orders_newest_received_first(
    sales, staff_client, params, expected
):
    platform = staff_client(Role.VIEWER, is_platform_staff=True)

    body = data(platform.get("/api/v1/orders", resolve(sales, params)))

    assert [o["order_id"] for o in body["results"]] == expected
    assert body["count"] == len(expected)


def test_from_and_to_are_on_the_servers_receive_time_not_the_machines_clock(sales, staff_client):
    platform = staff_client(Role.VIEWER, is_platform_staff=True)
    # Every machine clock is five days ahead: on machine time, all five sales would be after the 24th.

    assert listed(platform.get("/api/v1/orders", {"from": "2026-11-24T00:00:00Z"})) == []
    assert listed(platform.get("/api/v1/orders", {"to": "2026-11-24T00:00:00Z"})) == ["D", "C", "E", "B", "A"]


def test_pages_split_the_list_without_losing_or_repeating_an_order(sales, staff_client):
    platform = staff_client(Role.VIEWER, is_platform_staff=True)

    pages = [data(platform.get("/api/v1/orders", {"page_size": 2, "page": page})) for page in (1, 2, 3)]

    assert [[o["order_id"] for o in page["results"]] for page in pages] == [["D", "C"], ["E", "B"], ["A"]]
    assert [page["count"] for page in pages] == [5, 5, 5]
    assert [page["page"] for page in pages] == [1, 2, 3]
    assert pages[0]["previous"] is None and pages[2]["next"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"payment_status": "bogus"}, "payment_status"),
        ({"device_id": "lobby"}, "device_id"),
        ({"from": "last tuesday"}, "from"),
    ],
)
def test_a_filter_value_that_makes_no_sense_is_a_400_naming_the_parameter(
    sales, staff_client, expect_api_error, params, field
):
    platform = staff_client(Role.VIEWER, is_platform_staff=True)

    error = expect_api_error(platform.get("/api/v1/orders", params), 400, "VALIDATION_ERROR")

    assert field in error["details"]["fields"], error


def test_a_listed_order_carries_what_the_list_page_shows(sales, staff_client):
    viewer = staff_client(Role.VIEWER, [sales["merchant"]])

    (order,) = data(viewer.get("/api/v1/orders", {"query": "tx-A"}))["results"]

    a = sales["orders"]["A"]
    assert order == {
        "id": a.pk,
        "order_id": "A",
        "device_id": a.device_id,
        "device_serial": "CM2K-000001",
        "merchant_id": sales["merchant"].pk,
        "merchant_name": "Brew Co",
        "location_id": sales["lobby"].pk,
        "location_name": "Lobby",
        "currency": "CNY",
        "total": "18.00",
        "refunded_total": "0.00",
        "refundable_amount": "18.00",
        "payment_method": "wechat",
        "payment_status": "paid",
        "transaction_id": "tx-A",
        "device_created_at": "2026-11-25T10:00:00Z",
        "received_at": "2026-11-20T10:00:00Z",
        "is_test": False,
        "is_exception": False,
        "exception_reason": "",
        "exception_resolution": "",
        "exception_resolved_at": None,
    }


# --- One order --------------------------------------------------------------------------------------


def test_an_order_shows_its_items_and_its_refunds_with_who_when_and_why(merchant, staff_client, make_user):
    sale = OrderFactory(
        device=DeviceFactory(merchant=merchant),
        total=Decimal("48.00"),
        items=[
            {
                "product_id": "latte",
                "name": "Latte",
                "qty": 2,
                "unit_price": Decimal("18.00"),
                "recipe_version": "3",
                "options": {"size": "large"},
            },
            {"product_id": "americano", "name": "Americano", "qty": 1, "unit_price": Decimal("12.00")},
        ],
    )
    ops = make_user(Role.OPS, [merchant], email="ops@brew.example.com")
    refund_order(sale.pk, user=ops, reason="cold latte", amount=Decimal("18.00"))
    viewer = staff_client(Role.VIEWER, [merchant])

    order = data(viewer.get(f"/api/v1/orders/{sale.pk}"))

    assert order["order_id"] == sale.machine_order_id
    assert (order["total"], order["refunded_total"], order["refundable_amount"]) == (
        "48.00",
        "18.00",
        "30.00",
    )
    assert order["payment_status"] == "partially_refunded"
    assert order["items"] == [
        {
            "product_id": "latte",
            "name": "Latte",
            "qty": 2,
            "unit_price": "18.00",
            "line_total": "36.00",
            "recipe_version": "3",
            "options": {"size": "large"},
        },
        {
            "product_id": "americano",
            "name": "Americano",
            "qty": 1,
            "unit_price": "12.00",
            "line_total": "12.00",
            "recipe_version": "",
            "options": {},
        },
    ]
    (refund,) = order["refunds"]
    assert (refund["amount"], refund["reason"], refund["status"], refund["created_by"]) == (
        "18.00",
        "cold latte",
        "succeeded",
        "ops@brew.example.com",
    )
    assert refund["created_at"]


def test_an_unknown_order_is_404(staff_client, expect_api_error):
    platform = staff_client(Role.VIEWER, is_platform_staff=True)

    expect_api_error(platform.get("/api/v1/orders/999999"), 404, "NOT_FOUND")


def test_orders_are_for_signed_in_staff_only(sales, expect_api_error, machine):
    expect_api_error(APIClient().get("/api/v1/orders"), 401, "UNAUTHORIZED")
    expect_api_error(machine.get("/api/v1/orders"), 401, "UNAUTHORIZED")


# --- Tenancy ----------------------------------------------------------------------------------------


def test_a_merchants_staff_see_only_their_merchants_orders(sales, staff_client, expect_api_error):
    ops = staff_client(Role.OPS, [sales["merchant"]])
    other = sales["orders"]["E"]

    assert listed(ops.get("/api/v1/orders")) == ["D", "C", "B", "A"]
    assert listed(ops.get("/api/v1/orders", {"merchant_id": sales["other"].pk})) == []
    assert listed(ops.get("/api/v1/orders", {"device_id": other.device_id})) == []
    assert listed(ops.get("/api/v1/orders", {"query": "E"})) == []
    assert listed(ops.get("/api/v1/orders", {"query": "tx-E"})) == []
    assert listed(ops.get("/api/v1/orders", {"query": "CM2K-900001"})) == []
    assert listed(ops.get("/api/v1/orders", {"exception": "true"})) == ["C"]
    expect_api_error(ops.get(f"/api/v1/orders/{other.pk}"), 404, "NOT_FOUND")


def test_staff_of_two_merchants_see_both_and_platform_staff_see_all(sales, staff_client):
    both = staff_client(Role.VIEWER, [sales["merchant"], sales["other"]])
    platform = staff_client(Role.VIEWER, is_platform_staff=True)
    nobody = staff_client(Role.ADMIN, [])

    assert listed(both.get("/api/v1/orders")) == ["D", "C", "E", "B", "A"]
    assert listed(platform.get("/api/v1/orders")) == ["D", "C", "E", "B", "A"]
    assert listed(nobody.get("/api/v1/orders")) == []


# --- What the list costs ------------------------------------------------------------------------------


def _logged_in(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize("platform", [False, True], ids=["merchant-ops", "platform-staff"])
def test_the_list_costs_the_same_queries_for_3_and_60_orders(merchant, make_user, platform):
    """Per request with a session: the session, the user, (for a merchant's staff) the merchant ids they
    may see, the page's count, and the page itself with merchant, location and machine joined in."""
    lobby = LocationFactory(merchant=merchant)
    devices = [DeviceFactory(merchant=merchant, location=lobby if i % 2 else None) for i in range(3)]
    user = make_user(Role.OPS, [] if platform else [merchant], is_platform_staff=platform)
    client = _logged_in(user)

    def queries_for_list(orders):
        while len(orders_made) < orders:
            orders_made.append(OrderFactory(device=devices[len(orders_made) % 3]))
        with CaptureQueriesContext(connection) as queries:
            reply = client.get("/api/v1/orders", {"page_size": 100})
        assert len(data(reply)["results"]) == orders
        return len(queries)

    orders_made = []
    client.get("/api/v1/orders")  # process-wide caches (content types) warm, as in a running server
    expected = 4 if platform else 5
    assert queries_for_list(3) == expected
    assert queries_for_list(60) == expected


def test_an_order_costs_the_same_queries_with_1_and_20_items_and_refunds(merchant, make_user):
    """The session, the user, the merchant ids, the order, its items, its refunds with who made them."""
    user = make_user(Role.OPS, [merchant])
    client = _logged_in(user)
    device = DeviceFactory(merchant=merchant)
    small = OrderFactory(device=device, total=Decimal("18.00"))
    refund_order(small.pk, user=user, reason="r", amount=Decimal("1.00"))
    big = OrderFactory(
        device=device,
        total=Decimal("360.00"),
        items=[
            {"product_id": f"p{i}", "name": f"P{i}", "qty": 1, "unit_price": Decimal("18.00")}
            for i in range(20)
        ],
    )
    for i in range(20):
        refund_order(
            big.pk,
            user=make_user(Role.OPS, [merchant]) if i < 2 else user,
            reason="r",
            amount=Decimal("1.00"),
        )

    client.get(f"/api/v1/orders/{small.pk}")  # process-wide caches warm, as in a running server

    def queries_for(order):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/api/v1/orders/{order.pk}").status_code == 200
        return len(queries)

    assert queries_for(small) == queries_for(big) == 6


def test_merchant_a_can_neither_see_nor_touch_merchant_bs_orders(sales, staff_client, expect_api_error):
    a_admin = staff_client(Role.ADMIN, [sales["merchant"]])
    b_order = sales["orders"]["E"]
    b_before = Order.objects.filter(pk=b_order.pk).values().get()

    assert "E" not in listed(a_admin.get("/api/v1/orders"))
    assert listed(a_admin.get("/api/v1/orders", {"merchant_id": sales["other"].pk})) == []
    assert listed(a_admin.get("/api/v1/orders", {"query": b_order.machine_order_id})) == []
    assert listed(a_admin.get("/api/v1/orders", {"query": b_order.transaction_id})) == []
    expect_api_error(a_admin.get(f"/api/v1/orders/{b_order.pk}"), 404, "NOT_FOUND")
    expect_api_error(
        a_admin.post(f"/api/v1/orders/{b_order.pk}/manual_refund", {"reason": "x"}, format="json"),
        404,
        "NOT_FOUND",
    )
    expect_api_error(
        a_admin.post(f"/api/v1/orders/{b_order.pk}/mark_exception", {"reason": "x"}, format="json"),
        404,
        "NOT_FOUND",
    )
    expect_api_error(
        a_admin.post(f"/api/v1/orders/{b_order.pk}/resolve_exception", {"resolution": "x"}, format="json"),
        404,
        "NOT_FOUND",
    )

    assert Order.objects.filter(pk=b_order.pk).values().get() == b_before
    assert not Refund.objects.exists()
