"""Time filters with odd offsets (found by schemathesis, tests/e2e/test_fuzz_api.py): an offset
past ±15:59 (`+22:17`), which PostgreSQL refused with a 500, filters on the instant it names; a time
that its offset pushes outside years 1-9999 names no instant either database can hold, and is a 400
naming the parameter that changes nothing, never a 500."""

from datetime import timedelta, timezone

import pytest

from accounts.models import Role
from operations.models import TaskJob
from orders.models import Order

pytestmark = pytest.mark.django_db

OUT_OF_RANGE = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-01:00"]
FAR_OFFSETS = ["7556-08-17T05:18:06.373743+22:17", "1484-10-27T16:53:50.8-19:31"]


@pytest.fixture
def admin(staff_client, merchant):
    return staff_client(Role.ADMIN, [merchant])


def assert_bad_time(reply, parameter, expect_api_error):
    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == [parameter], error


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("parameter", ["from", "to"])
def test_a_time_the_database_cannot_hold_is_a_400_in_the_order_list(
    admin, parameter, value, expect_api_error
):
    assert_bad_time(admin.get("/api/v1/orders", {parameter: value}), parameter, expect_api_error)


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_time_the_database_cannot_hold_is_a_400_in_a_machines_history(
    admin, registered, value, expect_api_error
):
    reply = admin.get(f"/api/v1/devices/{registered.device.pk}/history", {"from": value})
    assert_bad_time(reply, "from", expect_api_error)


def test_a_time_the_database_cannot_hold_is_a_400_in_the_audit_trail(admin, expect_api_error):
    reply = admin.get("/api/v1/audit", {"created_at__gte": OUT_OF_RANGE[0]})
    assert_bad_time(reply, "created_at__gte", expect_api_error)


def test_an_export_with_such_a_time_is_a_400_and_starts_no_job(admin, expect_api_error):
    reply = admin.post(f"/api/v1/orders/export?to={OUT_OF_RANGE[0].replace('+', '%2B')}")
    assert_bad_time(reply, "to", expect_api_error)
    assert not TaskJob.objects.exists()


@pytest.mark.parametrize("value", FAR_OFFSETS)
def test_an_offset_past_what_postgresql_takes_is_still_a_time(admin, registered, value):
    assert admin.get("/api/v1/orders", {"from": value}).status_code == 200
    assert admin.get(f"/api/v1/devices/{registered.device.pk}/history", {"to": value}).status_code == 200
    assert admin.get("/api/v1/audit", {"created_at__lt": value}).status_code == 200


@pytest.mark.parametrize("hours", [8, 22, -19])
def test_a_time_with_an_offset_filters_on_the_instant_it_names(admin, machine, order_body, hours):
    created = machine.post(f"/api/v1/devices/{machine.device.pk}/orders/create", order_body(), format="json")
    assert created.status_code == 201, created.content
    received = Order.objects.get().received_at.astimezone(timezone(timedelta(hours=hours, minutes=17)))

    def listed(since):
        return admin.get("/api/v1/orders", {"from": since.isoformat()}).json()["data"]["count"]

    assert listed(received) == 1
    assert listed(received + timedelta(microseconds=1)) == 0
