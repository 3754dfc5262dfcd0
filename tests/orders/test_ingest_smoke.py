"""Smoke: the protocol's own example order is taken. The ingest tests proper live in test_ingest.py (and
test_ingest_concurrency.py on PostgreSQL); other modules import the example order from here as `order`."""

import pytest

from tests.conftest import protocol_order as order

__all__ = ["order"]


@pytest.mark.django_db
def test_the_protocols_example_order_is_accepted(machine):
    reply = machine.post(f"/api/v1/devices/{machine.device.pk}/orders/create", order(), format="json")

    assert reply.status_code == 201, reply.content
    assert reply.json() == {
        "ok": True,
        "data": {"order_id": "CM2K-000123-20261124-0042", "result": "accepted"},
    }
