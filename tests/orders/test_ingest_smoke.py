import pytest

pytestmark = pytest.mark.django_db


def order(order_id="CM2K-000123-20261124-0042", **overrides):
    body = {"order_id": order_id, "created_at": "2026-11-24T08:14:31+08:00", "currency": "CNY", "total": "36.00",
            "payment": {"method": "wechat", "status": "paid", "transaction_id": "wx-4200001234"},
            "items": [{"product_id": "latte", "name": "Latte", "qty": 2, "unit_price": "18.00",
                       "recipe_version": "3", "options": {"size": "large", "sugar": 1}}],
            "is_test": False}
    body.update(overrides)
    return body


def test_single_order_then_duplicate_then_conflict(machine):
    path = f"/api/v1/devices/{machine.device.pk}/orders/create"
    first = machine.post(path, order(), format="json")
    assert first.status_code == 201, first.content
    assert first.json()["data"] == {"order_id": "CM2K-000123-20261124-0042", "result": "accepted"}
    again = machine.post(path, order(), format="json")
    assert again.status_code == 200 and again.json()["data"]["result"] == "duplicate"
    changed = machine.post(path, order(total="18.00", items=[{"product_id": "latte", "name": "Latte", "qty": 1,
                                                              "unit_price": "18.00"}]), format="json")
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "CONFLICT"


def test_backlog_partial(machine):
    path = f"/api/v1/devices/{machine.device.pk}/orders/create"
    reply = machine.post(path, {"orders": [order("A-1"), order("A-2", total="1.00"), order("A-1"), order("A-3")]},
                         format="json")
    assert reply.status_code == 200, reply.content
    results = reply.json()["data"]["results"]
    assert [r["result"] for r in results] == ["accepted", "rejected", "duplicate", "accepted"]
    assert results[1]["error"]["details"]["fields"] == {"total": [results[1]["error"]["details"]["fields"]["total"][0]]}


def test_refund_flow(machine, staff_client, merchant):
    from accounts.models import Role

    machine.post(f"/api/v1/devices/{machine.device.pk}/orders/create", order("R-1"), format="json")
    ops = staff_client(Role.OPS, [merchant])
    listing = ops.get("/api/v1/orders?payment_status=paid")
    assert listing.status_code == 200 and listing.json()["data"]["count"] == 1
    order_pk = listing.json()["data"]["results"][0]["id"]
    part = ops.post(f"/api/v1/orders/{order_pk}/manual_refund", {"reason": "cold", "amount": "10.00"}, format="json")
    assert part.status_code == 201, part.content
    assert part.json()["data"]["payment_status"] == "partially_refunded"
    too_much = ops.post(f"/api/v1/orders/{order_pk}/manual_refund", {"reason": "again", "amount": "30.00"},
                        format="json")
    assert too_much.status_code == 400
    rest = ops.post(f"/api/v1/orders/{order_pk}/manual_refund", {"reason": "rest"}, format="json")
    assert rest.json()["data"]["payment_status"] == "refunded"
    assert rest.json()["data"]["refunded_total"] == "36.00"

