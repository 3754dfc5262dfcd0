"""Protocol 1.1: types are strict and every number fits its column. A loose value is a 400 naming
the field and changes nothing, never a 500 and never coerced."""

import pytest

from orders.models import Order
from tests.conftest import protocol_order

pytestmark = pytest.mark.django_db


def heartbeat(machine, **fields):
    body = {"state": "idle", "temperature_c": 92.0, **fields}
    return machine.post(f"/api/v1/devices/{machine.device.pk}/status", body, format="json")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("uptime_s", 10**19),  # past bigint: was a 500
        ("uptime_s", "3600"),
        ("uptime_s", True),
        ("uptime_s", 3600.5),
        ("temperature_c", "92"),
        ("temperature_c", False),
        ("firmware", 142),
    ],
)
def test_a_loose_heartbeat_field_is_a_400_naming_it(machine, field, value):
    reply = heartbeat(machine, **{field: value})
    assert reply.status_code == 400, reply.content
    assert field in reply.json()["error"]["details"]["fields"]
    machine.device.refresh_from_db()
    assert machine.device.uptime_s is None


def test_the_largest_int64_uptime_is_kept(machine):
    assert heartbeat(machine, uptime_s=2**63 - 1).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"order_id": 1234567890123456789012345678901}, "order_id"),  # was stored as a 31-digit string
        ({"is_test": 0}, "is_test"),
        ({"is_test": "false"}, "is_test"),
    ],
)
def test_a_loose_order_field_is_a_400_and_stores_nothing(machine, overrides, field):
    reply = machine.post(
        f"/api/v1/devices/{machine.device.pk}/orders/create", protocol_order(**overrides), format="json"
    )
    assert reply.status_code == 400, reply.content
    assert field in reply.json()["error"]["details"]["fields"]
    assert not Order.objects.exists()


def test_an_item_quantity_given_as_a_string_is_refused(machine):
    order = protocol_order()
    order["items"][0]["qty"] = "2"
    reply = machine.post(f"/api/v1/devices/{machine.device.pk}/orders/create", order, format="json")
    assert reply.status_code == 400
    assert "items.0.qty" in reply.json()["error"]["details"]["fields"]
