"""Every change through the admin, the API and the machines leaves a row saying who, how, what."""

import pytest
from django.test import Client

from accounts.models import Role
from audit.models import OperationLog
from operations.models import AlarmType, Severity
from operations.services import alarms
from tests.factories import LocationFactory

pytestmark = pytest.mark.django_db


def last(action: str) -> OperationLog:
    return OperationLog.objects.filter(action=action).latest("pk")


def test_a_machine_registering_is_recorded_as_the_machine(registered):
    row = last("device.registered")
    assert (row.source, row.target_id, row.merchant_id) == (
        "machine",
        str(registered.device.pk),
        registered.device.merchant_id,
    )
    assert row.changes["serial"] == "CM2K-000123"
    assert "token" not in str(row.changes)


def test_staff_changes_through_the_api_record_who_from_where_and_what_changed(
    registered, staff_client, merchant
):
    ops = staff_client(Role.OPS, [merchant])
    device = registered.device
    assert (
        ops.patch(
            f"/api/v1/devices/{device.pk}", {"alias": "Hall B"}, format="json", REMOTE_ADDR="10.1.2.3"
        ).status_code
        == 200
    )
    row = last("device.updated")
    assert (row.actor, row.source, row.ip_address) == (ops.user, "api", "10.1.2.3")
    assert row.changes == {"alias": ["Lobby A", "Hall B"]}

    assert ops.post(f"/api/v1/devices/{device.pk}/rotate-token").status_code == 200
    rotated = last("device.token_rotated")
    assert rotated.actor == ops.user and rotated.merchant_id == merchant.pk


def test_commands_are_recorded_when_sent_by_staff_and_when_the_machine_reports(
    machine, staff_client, merchant
):
    ops = staff_client(Role.OPS, [merchant])
    sent = ops.post(
        f"/api/v1/devices/{machine.device.pk}/commands", {"type": "unlock", "payload": {}}, format="json"
    ).json()["data"]
    assert last("command.sent").actor == ops.user
    machine.post(
        f"/api/v1/devices/{machine.device.pk}/commands/{sent['command_id']}/result",
        {"status": "succeeded"},
        format="json",
    )
    result = last("command.result")
    assert (result.source, result.device_id, result.actor) == ("machine", machine.device.pk, None)
    assert result.changes == {"reported": "succeeded", "status": "succeeded"}


def test_acknowledging_an_alarm_is_recorded(machine, staff_client, merchant):
    alarm, _ = alarms.open_or_bump_alarm(machine.device, AlarmType.OFFLINE, Severity.CRITICAL)
    ops = staff_client(Role.OPS, [merchant])
    ops.post(f"/api/v1/alarms/{alarm.pk}/acknowledge")
    assert last("alarm.acknowledged").actor == ops.user


def test_a_change_in_the_admin_is_recorded_as_an_admin_change(make_user, merchant):
    admin = make_user(Role.ADMIN, [merchant])
    location = LocationFactory(merchant=merchant, name="Old name")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/devices/location/{location.pk}/change/")
    assert page.status_code == 200
    form = {
        "merchant": merchant.pk,
        "name": "New name",
        "address": "",
        "city": "Shanghai",
        "latitude": "31.230400",
        "longitude": "121.473700",
    }
    response = client.post(f"/admin/devices/location/{location.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    row = last("admin.changed")
    assert (row.actor, row.source, row.target_type, row.merchant_id) == (
        admin,
        "admin",
        "devices.location",
        merchant.pk,
    )
    assert "Name" in row.changes["message"] or "name" in row.changes["message"].lower()


def test_the_audit_api_is_for_admins_and_scoped_by_merchant(
    registered, staff_client, merchant, other_merchant
):
    from devices.services import register_device

    register_device(
        serial="OTHER-1",
        model="CM-2000",
        firmware="1",
        provisioning_secret=other_merchant.provisioning_secret,
    )
    admin = staff_client(Role.ADMIN, [merchant])
    rows = admin.get("/api/v1/audit?action=device.registered").json()["data"]["results"]
    assert [r["target_repr"] for r in rows] == ["Lobby A"]
    assert staff_client(Role.OPS, [merchant]).get("/api/v1/audit").status_code == 403
    platform = staff_client(Role.ADMIN, is_platform_staff=True)
    assert platform.get("/api/v1/audit?action=device.registered").json()["data"]["count"] == 2


def test_refunds_and_exceptions_are_recorded_but_not_each_sale(machine, staff_client, merchant):
    from tests.orders.test_ingest_smoke import order as order_body

    machine.post(
        f"/api/v1/devices/{machine.device.pk}/orders/create", {"orders": [order_body("AU-1")]}, format="json"
    )
    assert not OperationLog.objects.filter(action__startswith="orders.")
    ops = staff_client(Role.OPS, [merchant])
    order_pk = ops.get("/api/v1/orders").json()["data"]["results"][0]["id"]
    ops.post(f"/api/v1/orders/{order_pk}/manual_refund", {"reason": "cold", "amount": "5.00"}, format="json")
    refunded = last("order.refunded")
    assert (refunded.actor, refunded.changes["amount"], refunded.changes["reason"]) == (
        ops.user,
        "5.00",
        "cold",
    )
    ops.post(f"/api/v1/orders/{order_pk}/mark_exception", {"reason": "no cup"}, format="json")
    assert last("order.exception_marked").changes == {"reason": "no cup"}
