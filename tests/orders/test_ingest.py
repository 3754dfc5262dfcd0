"""POST /api/v1/devices/{device_id}/orders/create: a machine's sales, taken exactly once.

One order or an offline backlog (`{"orders": [...]}`, at most 500), idempotent on the machine's order id.
The concurrent cases (50 retries at once) are in test_ingest_concurrency.py, on PostgreSQL.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devices.services import issue_token
from orders.models import Order, OrderItem, PaymentMethod
from tests.conftest import protocol_order
from tests.factories import DeviceFactory, LocationFactory, MerchantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def create(client, body, device_id=None):
    return client.post(f"/api/v1/devices/{device_id or client.device.pk}/orders/create", body, format="json")


def backlog(client, orders, device_id=None):
    reply = create(client, {"orders": orders}, device_id)
    assert reply.status_code == 200, reply.content
    return reply.json()["data"]["results"]


def stored_ids(device):
    return sorted(Order.objects.filter(device=device).values_list("machine_order_id", flat=True))


# --- One order ------------------------------------------------------------------------------------


def test_a_new_order_is_accepted_and_recorded_as_the_machine_sent_it(machine):
    lobby = LocationFactory(merchant=machine.device.merchant, name="Lobby")
    machine.device.location = lobby
    machine.device.save()
    before = timezone.now()

    reply = create(machine, protocol_order())

    assert reply.status_code == 201, reply.content
    assert reply.json() == {
        "ok": True,
        "data": {"order_id": "CM2K-000123-20261124-0042", "result": "accepted"},
    }
    order = Order.objects.get()
    assert order.device == machine.device
    assert order.merchant == machine.device.merchant
    assert order.location == lobby
    assert order.machine_order_id == "CM2K-000123-20261124-0042"
    assert (order.currency, order.total, order.refunded_total) == ("CNY", Decimal("36.00"), Decimal("0.00"))
    assert (order.payment_method, order.payment_status, order.transaction_id) == (
        "wechat",
        "paid",
        "wx-4200001234",
    )
    # The machine's clock as sent, and the server's own beside it.
    assert order.device_created_at == datetime(2026, 11, 24, 0, 14, 31, tzinfo=UTC)
    assert before <= order.received_at <= timezone.now()
    assert order.is_test is False
    assert order.is_exception is False
    assert list(
        order.items.values("position", "product_id", "name", "qty", "unit_price", "recipe_version", "options")
    ) == [
        {
            "position": 0,
            "product_id": "latte",
            "name": "Latte",
            "qty": 2,
            "unit_price": Decimal("18.00"),
            "recipe_version": "3",
            "options": {"size": "large", "sugar": 1},
        }
    ]


def test_an_order_with_several_items_keeps_them_in_the_order_sold(machine):
    items = [
        {"product_id": "latte", "name": "Latte", "qty": 1, "unit_price": "18.00"},
        {"product_id": "americano", "name": "Americano", "qty": 3, "unit_price": "12.50"},
        {"product_id": "water", "name": "Water", "qty": 1, "unit_price": "0.00"},
    ]

    assert create(machine, protocol_order("M-1", total="55.50", items=items)).status_code == 201

    assert list(
        OrderItem.objects.filter(order__machine_order_id="M-1").values_list("position", "product_id", "qty")
    ) == [(0, "latte", 1), (1, "americano", 3), (2, "water", 1)]


def test_the_same_order_again_is_a_200_duplicate_that_changes_nothing(machine):
    create(machine, protocol_order())
    first = Order.objects.get()

    again = create(machine, protocol_order())

    assert again.status_code == 200, again.content
    assert again.json()["data"] == {"order_id": "CM2K-000123-20261124-0042", "result": "duplicate"}
    assert Order.objects.count() == 1
    assert OrderItem.objects.count() == 1
    assert Order.objects.get().received_at == first.received_at


def test_the_same_order_written_differently_is_still_the_same_order(machine):
    create(machine, protocol_order())
    rewritten = {
        "items": [
            {
                "options": {"sugar": 1, "size": "large"},
                "recipe_version": "3",
                "unit_price": "18.0",
                "qty": 2,
                "name": "Latte",
                "product_id": "latte",
            }
        ],
        "is_test": False,
        "payment": {"transaction_id": "wx-4200001234", "status": "paid", "method": "wechat"},
        "total": "36.0",
        "currency": "CNY",
        "created_at": "2026-11-24T00:14:31Z",  # the same instant as 08:14:31+08:00
        "order_id": "CM2K-000123-20261124-0042",
    }

    reply = create(machine, rewritten)

    assert reply.status_code == 200, reply.content
    assert reply.json()["data"]["result"] == "duplicate"
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {
            "total": "18.00",
            "items": [
                {
                    "product_id": "latte",
                    "name": "Latte",
                    "qty": 1,
                    "unit_price": "18.00",
                    "recipe_version": "3",
                    "options": {"size": "large", "sugar": 1},
                }
            ],
        },
        {"payment": {"method": "alipay", "status": "paid", "transaction_id": "wx-4200001234"}},
        {"payment": {"method": "wechat", "status": "failed", "transaction_id": "wx-4200001234"}},
        {"created_at": "2026-11-24T08:14:32+08:00"},
        {"is_test": True},
    ],
    ids=["items", "method", "status", "time", "is_test"],
)
def test_the_same_order_id_with_other_content_is_a_409_and_the_first_order_stands(
    machine, expect_api_error, change
):
    create(machine, protocol_order())

    error = expect_api_error(create(machine, protocol_order(**change)), 409, "CONFLICT")

    assert "order_id" in error["details"]["fields"]
    order = Order.objects.get()
    assert (order.total, order.payment_method, order.payment_status, order.is_test) == (
        Decimal("36.00"),
        "wechat",
        "paid",
        False,
    )
    assert order.items.get().qty == 2


def test_an_order_id_is_unique_per_machine_not_across_machines(machine, machine_client):
    other = machine_client(DeviceFactory(merchant=machine.device.merchant))

    assert create(machine, protocol_order("SHARED-1")).status_code == 201
    assert create(other, protocol_order("SHARED-1")).status_code == 201

    assert Order.objects.filter(machine_order_id="SHARED-1").count() == 2


def test_a_sale_stays_where_the_machine_stood_when_it_sold(machine):
    lobby = LocationFactory(merchant=machine.device.merchant, name="Lobby")
    office = LocationFactory(merchant=machine.device.merchant, name="Office")
    machine.device.location = lobby
    machine.device.save()
    create(machine, protocol_order("BEFORE-MOVE"))

    machine.device.location = office
    machine.device.save()
    create(machine, protocol_order("AFTER-MOVE"))

    assert Order.objects.get(machine_order_id="BEFORE-MOVE").location == lobby
    assert Order.objects.get(machine_order_id="AFTER-MOVE").location == office


# --- What a machine may not send -------------------------------------------------------------------


def _item(**overrides):
    return {"product_id": "latte", "name": "Latte", "qty": 2, "unit_price": "18.00", **overrides}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"total": "35.00"}, "total"),
        ({"total": 36.0}, "total"),
        ({"total": 36}, "total"),
        ({"total": "36.001"}, "total"),
        ({"items": [_item(unit_price=18.0)]}, "items.0.unit_price"),
        ({"items": [_item(unit_price="-18.00")], "total": "-36.00"}, "items.0.unit_price"),
        ({"items": [_item(qty=0)], "total": "0.00"}, "items.0.qty"),
        ({"items": [_item(), _item(qty=-1)]}, "items.1.qty"),
        ({"items": []}, "items"),
        ({"created_at": "2026-11-24T08:14:31"}, "created_at"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"currency": "yuan"}, "currency"),
        ({"payment": {"method": "wechat", "status": "refunded"}}, "payment.status"),
        ({"payment": {"method": "WeChat Pay!", "status": "paid"}}, "payment.method"),
        ({"order_id": ""}, "order_id"),
    ],
    ids=[
        "total-mismatch",
        "total-float",
        "total-int",
        "total-3-places",
        "price-float",
        "price-negative",
        "qty-0",
        "qty-negative-2nd-item",
        "no-items",
        "time-without-offset",
        "time-garbage",
        "currency",
        "status-unknown",
        "method-not-a-code",
        "no-order-id",
    ],
)
def test_an_invalid_order_is_a_400_naming_the_field_and_records_nothing(
    machine, expect_api_error, overrides, field
):
    error = expect_api_error(create(machine, protocol_order(**overrides)), 400, "VALIDATION_ERROR")

    assert field in error["details"]["fields"], error
    assert Order.objects.count() == 0
    assert OrderItem.objects.count() == 0


def test_the_total_error_says_what_the_items_add_up_to(machine, expect_api_error):
    error = expect_api_error(create(machine, protocol_order(total="35.00")), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["total"]
    assert "36.00" in error["details"]["fields"]["total"][0]


def test_a_quantity_below_one_says_it_must_be_at_least_1(machine, expect_api_error):
    error = expect_api_error(
        create(machine, protocol_order(items=[_item(qty=0)], total="0.00")), 400, "VALIDATION_ERROR"
    )

    assert error["details"]["fields"]["items.0.qty"] == ["must be at least 1"]


# --- Payment methods and statuses ---------------------------------------------------------------------


def test_a_payment_method_the_merchant_never_defined_is_taken_and_opens_an_exception(machine):
    reply = create(machine, protocol_order(payment={"method": "meituan_pay", "status": "paid"}))

    assert reply.status_code == 201, reply.content
    assert reply.json()["data"] == {"order_id": "CM2K-000123-20261124-0042", "result": "accepted"}
    order = Order.objects.get()
    assert (order.payment_method, order.payment_status) == ("meituan_pay", "paid")
    assert order.is_exception
    assert order.exception_reason == "unknown_payment_method"
    assert order.exception_marked_at is not None
    assert not PaymentMethod.objects.exists()  # a machine defines nothing


def test_a_method_the_merchant_defined_is_taken_without_exception(machine):
    PaymentMethod.objects.create(merchant=machine.device.merchant, code="meituan_pay", name="Meituan")

    reply = create(machine, protocol_order(payment={"method": "meituan_pay", "status": "paid"}))

    assert reply.status_code == 201, reply.content
    assert not Order.objects.get().is_exception


def test_a_method_another_merchant_defined_is_still_unknown_here(machine):
    PaymentMethod.objects.create(merchant=MerchantFactory(), code="meituan_pay", name="Meituan")

    create(machine, protocol_order(payment={"method": "meituan_pay", "status": "paid"}))

    assert Order.objects.get().exception_reason == "unknown_payment_method"


def test_in_a_backlog_only_the_orders_with_an_unknown_method_open_exceptions(machine):
    orders = [
        protocol_order("KNOWN", payment={"method": "cash", "status": "paid"}),
        protocol_order("UNKNOWN", payment={"method": "barter", "status": "paid"}),
    ]

    reply = create(machine, {"orders": orders})

    assert [r["result"] for r in reply.json()["data"]["results"]] == ["accepted", "accepted"]
    exceptions = dict(Order.objects.values_list("machine_order_id", "is_exception"))
    assert exceptions == {"KNOWN": False, "UNKNOWN": True}
    assert Order.objects.get(machine_order_id="UNKNOWN").exception_reason == "unknown_payment_method"


def test_the_retry_of_an_order_with_an_unknown_method_is_a_duplicate_not_a_second_exception(machine):
    body = protocol_order(payment={"method": "barter", "status": "paid"})
    create(machine, body)

    again = create(machine, body)

    assert again.status_code == 200 and again.json()["data"]["result"] == "duplicate"
    assert Order.objects.filter(is_exception=True).count() == 1


@pytest.mark.parametrize("method", ["wechat", "alipay", "card", "corp", "cash"])
def test_every_method_of_the_protocol_is_accepted(machine, method):
    reply = create(machine, protocol_order(payment={"method": method, "status": "paid"}))

    assert reply.status_code == 201, reply.content
    assert not Order.objects.get().is_exception


@pytest.mark.parametrize("status", ["paid", "unpaid", "failed"])
def test_every_payment_status_a_machine_may_send_is_recorded(machine, status):
    assert create(machine, protocol_order(payment={"method": "cash", "status": status})).status_code == 201

    assert Order.objects.get().payment_status == status


def test_the_transaction_id_and_is_test_are_optional(machine):
    body = protocol_order(payment={"method": "cash", "status": "paid"})
    del body["is_test"]

    assert create(machine, body).status_code == 201

    order = Order.objects.get()
    assert (order.transaction_id, order.is_test) == ("", False)


# --- Who may send ---------------------------------------------------------------------------------


def test_a_token_of_another_machine_is_403_and_records_nothing(machine, expect_api_error):
    other = DeviceFactory(merchant=machine.device.merchant)

    expect_api_error(create(machine, protocol_order(), device_id=other.pk), 403, "FORBIDDEN")
    expect_api_error(create(machine, {"orders": [protocol_order()]}, device_id=other.pk), 403, "FORBIDDEN")

    assert Order.objects.count() == 0


def test_without_a_token_or_with_a_revoked_one_it_is_401(machine, expect_api_error):
    anonymous = type(machine)(enforce_csrf_checks=True)
    expect_api_error(
        anonymous.post(f"/api/v1/devices/{machine.device.pk}/orders/create", protocol_order(), format="json"),
        401,
        "UNAUTHORIZED",
    )

    issue_token(machine.device)  # revokes the token the client holds
    expect_api_error(create(machine, protocol_order()), 401, "UNAUTHORIZED")

    assert Order.objects.count() == 0


# --- An offline backlog ---------------------------------------------------------------------------------


def test_a_backlog_answers_one_entry_per_order_in_order_and_one_bad_order_never_costs_the_good_ones(
    machine,
):
    create(machine, protocol_order("EARLIER"))
    orders = [
        protocol_order("B-1"),
        protocol_order("B-2", total="35.00"),  # total does not match its items
        protocol_order("EARLIER"),  # already received: a duplicate
        protocol_order("B-1"),  # the same order twice in one backlog: a duplicate
        protocol_order("B-1", is_test=True),  # the same id with other content: a conflict
        protocol_order("B-3", items=[_item(qty=0)], total="0.00"),
        protocol_order("EARLIER", total="18.00", items=[_item(qty=1)]),  # conflicts with the stored one
        "not an order",
        protocol_order("B-4", payment={"method": "alipay", "status": "unpaid"}),
    ]

    results = backlog(machine, orders)

    assert [(r["order_id"], r["result"]) for r in results] == [
        ("B-1", "accepted"),
        ("B-2", "rejected"),
        ("EARLIER", "duplicate"),
        ("B-1", "duplicate"),
        ("B-1", "rejected"),
        ("B-3", "rejected"),
        ("EARLIER", "rejected"),
        (None, "rejected"),
        ("B-4", "accepted"),
    ]
    errors = {i: r["error"] for i, r in enumerate(results) if r["result"] == "rejected"}
    assert all("error" not in r for r in results if r["result"] != "rejected")
    assert errors[1]["code"] == "VALIDATION_ERROR" and list(errors[1]["details"]["fields"]) == ["total"]
    assert errors[4]["code"] == "CONFLICT" and "order_id" in errors[4]["details"]["fields"]
    assert errors[5]["code"] == "VALIDATION_ERROR" and "items.0.qty" in errors[5]["details"]["fields"]
    assert errors[6]["code"] == "CONFLICT"
    assert errors[7]["code"] == "VALIDATION_ERROR"
    assert all(e["message"] for e in errors.values())
    assert stored_ids(machine.device) == ["B-1", "B-4", "EARLIER"]
    assert Order.objects.get(machine_order_id="B-1").is_test is False
    assert Order.objects.get(machine_order_id="EARLIER").total == Decimal("36.00")
    assert OrderItem.objects.count() == 3


def test_a_backlog_sent_again_is_all_duplicates_and_adds_nothing(machine):
    orders = [protocol_order(f"R-{i}") for i in range(5)]
    assert {r["result"] for r in backlog(machine, orders)} == {"accepted"}

    again = backlog(machine, [*orders, protocol_order("R-5")])

    assert [r["result"] for r in again] == ["duplicate"] * 5 + ["accepted"]
    assert Order.objects.count() == 6
    assert OrderItem.objects.count() == 6


def test_a_backlog_of_500_orders_is_taken_whole(machine):
    results = backlog(machine, [protocol_order(f"FULL-{i:03d}") for i in range(500)])

    assert len(results) == 500
    assert {r["result"] for r in results} == {"accepted"}
    assert [r["order_id"] for r in results] == [f"FULL-{i:03d}" for i in range(500)]
    assert Order.objects.filter(device=machine.device).count() == 500
    assert OrderItem.objects.count() == 500


def test_a_backlog_of_more_than_500_orders_is_413_and_records_nothing(machine, expect_api_error):
    reply = create(machine, {"orders": [protocol_order(f"BIG-{i:03d}") for i in range(501)]})

    error = expect_api_error(reply, 413, "PAYLOAD_TOO_LARGE")
    assert "500" in error["message"]
    assert Order.objects.count() == 0


def test_an_empty_backlog_is_an_empty_answer(machine):
    assert backlog(machine, []) == []


def test_a_backlog_that_is_not_a_list_is_a_400_naming_orders(machine, expect_api_error):
    error = expect_api_error(create(machine, {"orders": {"order_id": "X"}}), 400, "VALIDATION_ERROR")

    assert "orders" in error["details"]["fields"]


def test_a_backlog_is_written_in_bulk_the_same_queries_for_10_orders_as_for_many(machine):
    """PostgreSQL takes 500 rows in one INSERT; SQLite splits an INSERT at 999 parameters (~45 orders)."""
    many = 500 if connection.vendor == "postgresql" else 40
    backlog(machine, [protocol_order("WARM-UP")])

    def queries_for(prefix, n):
        with CaptureQueriesContext(connection) as queries:
            results = backlog(machine, [protocol_order(f"{prefix}-{i}") for i in range(n)])
        assert {r["result"] for r in results} == {"accepted"}
        return len(queries)

    assert queries_for("TEN", 10) == queries_for("MANY", many)
