"""Order exceptions: staff flag a sale someone must look at, with a reason, and resolve it, with a resolution.

POST /api/v1/orders/{id}/mark_exception {"reason"} and /resolve_exception {"resolution"}.
"""

from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Role
from orders.models import Order
from tests.factories import DeviceFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


@pytest.fixture
def sale(merchant):
    return OrderFactory(
        device=DeviceFactory(merchant=merchant), machine_order_id="S-1", total=Decimal("18.00")
    )


@pytest.fixture
def ops(staff_client, merchant):
    return staff_client(Role.OPS, [merchant])


def mark(client, order, **body):
    return client.post(f"/api/v1/orders/{order.pk}/mark_exception", body, format="json")


def resolve(client, order, **body):
    return client.post(f"/api/v1/orders/{order.pk}/resolve_exception", body, format="json")


def open_exceptions(client):
    reply = client.get("/api/v1/orders", {"exception": "true"})
    assert reply.status_code == 200, reply.content
    return [o["order_id"] for o in reply.json()["data"]["results"]]


def test_marking_an_exception_records_why_who_and_when_and_lists_it_as_open(sale, ops):
    OrderFactory(device=sale.device, machine_order_id="S-2")  # a sale nobody complained about
    before = timezone.now()

    reply = mark(ops, sale, reason="customer says no cup came out")

    assert reply.status_code == 200, reply.content
    body = reply.json()["data"]
    assert (body["is_exception"], body["exception_reason"]) == (True, "customer says no cup came out")
    order = Order.objects.get(pk=sale.pk)
    assert order.exception_marked_by == ops.user
    assert before <= order.exception_marked_at <= timezone.now()
    assert open_exceptions(ops) == ["S-1"]


def test_resolving_records_the_resolution_and_closes_it(sale, ops):
    mark(ops, sale, reason="no cup")

    reply = resolve(ops, sale, resolution="refunded in cash at the counter")

    assert reply.status_code == 200, reply.content
    body = reply.json()["data"]
    assert (body["is_exception"], body["exception_reason"], body["exception_resolution"]) == (
        False,
        "no cup",
        "refunded in cash at the counter",
    )
    assert body["exception_resolved_at"]
    order = Order.objects.get(pk=sale.pk)
    assert order.exception_resolved_by == ops.user
    assert open_exceptions(ops) == []
    listed = ops.get("/api/v1/orders", {"exception": "false"}).json()["data"]["results"]
    assert [o["order_id"] for o in listed] == ["S-1"]


def test_marking_a_resolved_order_again_reopens_it_without_the_old_resolution(sale, ops):
    mark(ops, sale, reason="no cup")
    resolve(ops, sale, resolution="refunded")

    body = mark(ops, sale, reason="complained again").json()["data"]

    assert (body["is_exception"], body["exception_reason"], body["exception_resolution"]) == (
        True,
        "complained again",
        "",
    )
    assert body["exception_resolved_at"] is None
    assert open_exceptions(ops) == ["S-1"]


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "  "}], ids=["missing", "empty", "blank"])
def test_an_exception_needs_a_reason(sale, ops, expect_api_error, body):
    error = expect_api_error(mark(ops, sale, **body), 400, "VALIDATION_ERROR")

    assert "reason" in error["details"]["fields"]
    assert Order.objects.get(pk=sale.pk).is_exception is False


@pytest.mark.parametrize(
    "body", [{}, {"resolution": ""}, {"reason": "wrong field"}], ids=["missing", "empty", "wrong-field"]
)
def test_a_resolution_needs_a_resolution(sale, ops, expect_api_error, body):
    mark(ops, sale, reason="no cup")

    error = expect_api_error(resolve(ops, sale, **body), 400, "VALIDATION_ERROR")

    assert "resolution" in error["details"]["fields"]
    assert Order.objects.get(pk=sale.pk).is_exception is True


def test_resolving_an_order_that_is_not_an_open_exception_is_a_400(sale, ops, expect_api_error):
    expect_api_error(resolve(ops, sale, resolution="nothing to resolve"), 400, "VALIDATION_ERROR")
    mark(ops, sale, reason="no cup")
    resolve(ops, sale, resolution="refunded")

    expect_api_error(resolve(ops, sale, resolution="resolve it twice"), 400, "VALIDATION_ERROR")

    assert Order.objects.get(pk=sale.pk).exception_resolution == "refunded"


def test_a_viewer_may_neither_mark_nor_resolve(sale, ops, staff_client, merchant, expect_api_error):
    viewer = staff_client(Role.VIEWER, [merchant])

    expect_api_error(mark(viewer, sale, reason="looks odd"), 403, "FORBIDDEN")
    assert Order.objects.get(pk=sale.pk).is_exception is False

    mark(ops, sale, reason="no cup")
    expect_api_error(resolve(viewer, sale, resolution="fine"), 403, "FORBIDDEN")
    assert Order.objects.get(pk=sale.pk).is_exception is True


def test_another_merchants_staff_can_neither_mark_nor_resolve_nor_see_the_exception(
    sale, ops, staff_client, other_merchant, expect_api_error
):
    stranger = staff_client(Role.OPS, [other_merchant])

    expect_api_error(mark(stranger, sale, reason="not mine"), 404, "NOT_FOUND")
    assert Order.objects.get(pk=sale.pk).is_exception is False

    mark(ops, sale, reason="no cup")
    expect_api_error(resolve(stranger, sale, resolution="not mine"), 404, "NOT_FOUND")
    assert Order.objects.get(pk=sale.pk).is_exception is True
    assert open_exceptions(stranger) == []
