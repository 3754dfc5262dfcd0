"""POST /api/v1/orders/{id}/manual_refund: refunds never add up to more than was paid, and each says who,
when and why. The concurrent case (two operators at once) runs on PostgreSQL."""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role
from orders.models import Order, Refund
from orders.payments import RefundOutcome, _gateway_for
from orders.services import refund_order
from tests.factories import DeviceFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


class RefusingGateway:
    """A payment provider that refuses every refund, as WeChat Pay does when the merchant's balance is low."""

    def refund(self, *, order, amount, reason):
        return RefundOutcome(succeeded=False, failure_reason="NOTENOUGH: merchant balance insufficient")


@pytest.fixture
def gateway(settings):
    """gateway(path) switches the payment provider (the provider is memoised, so the memo is cleared)."""

    def use(path):
        settings.PAYMENT_GATEWAY = path
        _gateway_for.cache_clear()

    yield use
    _gateway_for.cache_clear()


@pytest.fixture
def paid(merchant):
    """A paid order of 36.00 at Brew Co."""
    return OrderFactory(
        device=DeviceFactory(merchant=merchant), total=Decimal("36.00"), payment_status="paid"
    )


@pytest.fixture
def ops(staff_client, merchant):
    return staff_client(Role.OPS, [merchant])


def refund(client, order, **body):
    return client.post(f"/api/v1/orders/{order.pk}/manual_refund", body, format="json")


def state(order):
    order = Order.objects.get(pk=order.pk)
    return order.payment_status, order.refunded_total


# --- Refunding --------------------------------------------------------------------------------------


def test_a_refund_without_an_amount_refunds_everything_and_records_who_when_and_why(paid, ops):
    before = timezone.now()

    reply = refund(ops, paid, reason="machine poured no milk")

    assert reply.status_code == 201, reply.content
    order = reply.json()["data"]
    assert (order["payment_status"], order["refunded_total"], order["refundable_amount"]) == (
        "refunded",
        "36.00",
        "0.00",
    )
    assert [(r["amount"], r["reason"], r["status"], r["created_by"]) for r in order["refunds"]] == [
        ("36.00", "machine poured no milk", "succeeded", ops.user.email)
    ]
    row = Refund.objects.get()
    assert (row.order_id, row.amount, row.reason, row.status) == (
        paid.pk,
        Decimal("36.00"),
        "machine poured no milk",
        "succeeded",
    )
    assert row.created_by == ops.user
    assert before <= row.created_at <= timezone.now()
    assert row.provider_refund_id
    assert state(paid) == ("refunded", Decimal("36.00"))


def test_partial_refunds_add_up_to_the_total_and_no_further(paid, ops, expect_api_error):
    first = refund(ops, paid, reason="too sweet", amount="10.00")
    assert first.status_code == 201, first.content
    assert (first.json()["data"]["payment_status"], first.json()["data"]["refundable_amount"]) == (
        "partially_refunded",
        "26.00",
    )

    assert refund(ops, paid, reason="too cold", amount="20.50").status_code == 201
    assert state(paid) == ("partially_refunded", Decimal("30.50"))

    rest = refund(ops, paid, reason="gave up")
    assert rest.status_code == 201, rest.content
    assert state(paid) == ("refunded", Decimal("36.00"))
    assert sorted(Refund.objects.values_list("amount", flat=True)) == [
        Decimal("5.50"),
        Decimal("10.00"),
        Decimal("20.50"),
    ]

    expect_api_error(refund(ops, paid, reason="once more", amount="0.01"), 400, "VALIDATION_ERROR")
    assert state(paid) == ("refunded", Decimal("36.00"))
    assert Refund.objects.count() == 3


def test_more_than_what_is_left_is_a_400_naming_amount_and_refunds_nothing(paid, ops, expect_api_error):
    refund(ops, paid, reason="first", amount="30.00")

    error = expect_api_error(refund(ops, paid, reason="second", amount="6.01"), 400, "VALIDATION_ERROR")

    assert "amount" in error["details"]["fields"]
    assert "6.00" in error["message"]
    assert state(paid) == ("partially_refunded", Decimal("30.00"))
    assert Refund.objects.count() == 1


@pytest.mark.parametrize("amount", ["0.00", "-5.00", "1.005", "ten"])
def test_an_amount_that_is_not_a_positive_sum_of_money_is_a_400_naming_amount(
    paid, ops, expect_api_error, amount
):
    error = expect_api_error(refund(ops, paid, reason="why not", amount=amount), 400, "VALIDATION_ERROR")

    assert "amount" in error["details"]["fields"], error
    assert state(paid) == ("paid", Decimal("0.00"))
    assert not Refund.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "   "}, {"amount": "5.00"}],
    ids=["nothing", "empty", "blank", "amount-only"],
)
def test_a_refund_without_a_reason_is_a_400_naming_reason_and_refunds_nothing(
    paid, ops, expect_api_error, body
):
    error = expect_api_error(refund(ops, paid, **body), 400, "VALIDATION_ERROR")

    assert "reason" in error["details"]["fields"]
    assert state(paid) == ("paid", Decimal("0.00"))
    assert not Refund.objects.exists()


@pytest.mark.parametrize("status", ["unpaid", "failed"])
def test_an_order_that_was_never_paid_cannot_be_refunded(merchant, ops, expect_api_error, status):
    order = OrderFactory(device=DeviceFactory(merchant=merchant), payment_status=status)

    error = expect_api_error(refund(ops, order, reason="refund it anyway"), 400, "VALIDATION_ERROR")

    assert error["details"]["fields"]
    assert state(order) == (status, Decimal("0.00"))
    assert not Refund.objects.exists()


def test_an_admin_and_platform_staff_may_refund_too(paid, staff_client, merchant):
    admin = staff_client(Role.ADMIN, [merchant])
    platform_ops = staff_client(Role.OPS, is_platform_staff=True)

    assert refund(admin, paid, reason="admin", amount="1.00").status_code == 201
    assert refund(platform_ops, paid, reason="platform", amount="2.00").status_code == 201

    assert state(paid) == ("partially_refunded", Decimal("3.00"))
    assert sorted(Refund.objects.values_list("created_by__role", flat=True)) == ["admin", "ops"]


# --- Who may not ------------------------------------------------------------------------------------


def test_a_viewer_may_not_refund(paid, staff_client, merchant, expect_api_error):
    viewer = staff_client(Role.VIEWER, [merchant])

    expect_api_error(refund(viewer, paid, reason="I am only looking"), 403, "FORBIDDEN")

    assert state(paid) == ("paid", Decimal("0.00"))
    assert not Refund.objects.exists()


def test_another_merchants_order_is_not_found_and_stays_untouched(
    paid, staff_client, other_merchant, expect_api_error
):
    stranger = staff_client(Role.OPS, [other_merchant])

    expect_api_error(refund(stranger, paid, reason="not mine"), 404, "NOT_FOUND")
    expect_api_error(refund(stranger, paid, reason="not mine", amount="1.00"), 404, "NOT_FOUND")

    assert state(paid) == ("paid", Decimal("0.00"))
    assert not Refund.objects.exists()


def test_a_refund_needs_a_signed_in_user(paid, expect_api_error):
    expect_api_error(
        APIClient().post(f"/api/v1/orders/{paid.pk}/manual_refund", {"reason": "x"}, format="json"),
        401,
        "UNAUTHORIZED",
    )

    assert state(paid) == ("paid", Decimal("0.00"))


# --- When the payment provider refuses ------------------------------------------------------------------


def test_a_refused_refund_leaves_the_order_in_refund_failed_and_can_be_retried(paid, ops, gateway):
    gateway("tests.orders.test_refunds.RefusingGateway")

    refused = refund(ops, paid, reason="cup leaked")

    assert refused.status_code == 201, refused.content
    order = refused.json()["data"]
    assert (order["payment_status"], order["refunded_total"], order["refundable_amount"]) == (
        "refund_failed",
        "0.00",
        "36.00",
    )
    assert [(r["status"], r["failure_reason"]) for r in order["refunds"]] == [
        ("failed", "NOTENOUGH: merchant balance insufficient")
    ]
    assert state(paid) == ("refund_failed", Decimal("0.00"))

    gateway("orders.payments.RecordedRefundGateway")
    retried = refund(ops, paid, reason="cup leaked (retry)")

    assert retried.status_code == 201, retried.content
    assert state(paid) == ("refunded", Decimal("36.00"))
    assert list(
        Refund.objects.order_by("created_at", "pk").values_list("status", "amount", "created_by")
    ) == [("failed", Decimal("36.00"), ops.user.pk), ("succeeded", Decimal("36.00"), ops.user.pk)]


def test_a_refused_refund_after_a_partial_one_keeps_what_was_refunded(paid, ops, gateway):
    refund(ops, paid, reason="part", amount="6.00")
    gateway("tests.orders.test_refunds.RefusingGateway")

    refund(ops, paid, reason="the rest")
    assert state(paid) == ("refund_failed", Decimal("6.00"))

    gateway("orders.payments.RecordedRefundGateway")
    assert refund(ops, paid, reason="the rest, again").status_code == 201
    assert state(paid) == ("refunded", Decimal("36.00"))
    assert Refund.objects.filter(status="succeeded").count() == 2


# --- The database holds the rule too -----------------------------------------------------------------


@pytest.mark.parametrize(
    "refunded_total", [F("total") + Decimal("0.01"), Decimal("-0.01")], ids=["more-than-total", "negative"]
)
def test_the_database_refuses_refunds_beyond_the_total(paid, refunded_total):
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=paid.pk).update(refunded_total=refunded_total)

    assert state(paid) == ("paid", Decimal("0.00"))


def test_the_service_refuses_more_than_what_is_left(paid, make_user):
    from coffeeshop.exceptions import Invalid

    user = make_user(Role.OPS)
    refund_order(paid.pk, user=user, reason="first", amount=Decimal("35.99"))

    with pytest.raises(Invalid):
        refund_order(paid.pk, user=user, reason="second", amount=Decimal("0.02"))

    assert state(paid) == ("partially_refunded", Decimal("35.99"))


# --- Two operators at once (PostgreSQL) -----------------------------------------------------------------


def _refund_at_once(order, users, bodies):
    """Every user POSTs their body at the same moment, each from its own thread and connection."""
    barrier = threading.Barrier(len(users))

    def send(user_and_body):
        user, body = user_and_body
        try:
            client = APIClient(enforce_csrf_checks=True)
            client.force_authenticate(user)
            barrier.wait(timeout=30)
            reply = client.post(f"/api/v1/orders/{order.pk}/manual_refund", body, format="json")
            return reply.status_code, reply.json()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        return list(pool.map(send, zip(users, bodies, strict=True)))


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        why = f"concurrent refunds need PostgreSQL's row locks (this run uses {connection.vendor})"
        pytest.skip(reason=why)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("on_postgres")
def test_operators_refunding_the_whole_order_at_once_refund_it_once(merchant, make_user):
    order = OrderFactory(device=DeviceFactory(merchant=merchant), total=Decimal("36.00"))
    operators = [make_user(Role.OPS, [merchant]) for _ in range(4)]

    replies = _refund_at_once(order, operators, [{"reason": f"operator {i}"} for i in range(4)])

    assert sorted(status for status, _ in replies) == [201, 400, 400, 400], replies
    assert {body["error"]["code"] for status, body in replies if status == 400} == {"VALIDATION_ERROR"}
    assert state(order) == ("refunded", Decimal("36.00"))
    assert Refund.objects.filter(order=order, status="succeeded").count() == 1
    assert Refund.objects.filter(order=order).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("on_postgres")
def test_partial_refunds_at_once_stop_exactly_at_the_total(merchant, make_user):
    order = OrderFactory(device=DeviceFactory(merchant=merchant), total=Decimal("36.00"))
    operators = [make_user(Role.OPS, [merchant]) for _ in range(6)]

    replies = _refund_at_once(order, operators, [{"reason": "part", "amount": "10.00"}] * 6)

    assert sorted(status for status, _ in replies) == [201] * 3 + [400] * 3, replies
    assert state(order) == ("partially_refunded", Decimal("30.00"))
    assert list(Refund.objects.filter(order=order).values_list("amount", flat=True)) == [Decimal("10.00")] * 3
