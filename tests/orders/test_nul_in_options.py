"""An order item's options holding NUL (which PostgreSQL cannot store) are a 400 naming the option
that keeps no order, never a 500; in a backlog, only that order is rejected."""

import json

import pytest

from orders.models import Order

pytestmark = pytest.mark.django_db


def with_options(order_body, order_id, options):
    body = order_body(order_id)
    body["items"][0]["options"] = options
    return body


def post_json(machine, body):
    return machine.post(
        f"/api/v1/devices/{machine.device.pk}/orders/create",
        json.dumps(body),
        content_type="application/json",
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"size": "large\x00"}, "items.0.options.size"),
        ({"size\x00": "large"}, "items.0.options"),
        ({"notes": ["ok", "\x00"]}, "items.0.options.notes.1"),
    ],
)
def test_options_with_nul_are_a_400_and_no_order(machine, order_body, options, field, expect_api_error):
    reply = post_json(machine, with_options(order_body, "U-1", options))
    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == [field], error
    assert not Order.objects.exists()


def test_in_a_backlog_only_the_order_with_nul_in_options_is_rejected(machine, order_body):
    backlog = {"orders": [order_body("U-1"), with_options(order_body, "U-2", {"size": "\x00"})]}
    reply = post_json(machine, backlog)
    assert reply.status_code == 200, reply.content
    assert [r["result"] for r in reply.json()["data"]["results"]] == ["accepted", "rejected"]
    assert list(Order.objects.values_list("machine_order_id", flat=True)) == ["U-1"]
