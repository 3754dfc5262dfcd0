"""Unique and length constraints, a merchant that does not exist and garbled search input are a
400/409 in the envelope that changes nothing, never a 500 (issue 15, item 8)."""

import pytest

from accounts.models import Role
from devices.models import Location
from tests.factories import LocationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(staff_client, merchant):
    return staff_client(Role.ADMIN, [merchant])


def test_a_second_location_with_the_same_name_is_a_409_naming_the_field(admin, merchant):
    LocationFactory(merchant=merchant, name="Lobby")
    reply = admin.post("/api/v1/locations", {"merchant_id": merchant.pk, "name": "Lobby"}, format="json")
    assert reply.status_code == 409, reply.content
    assert reply.json()["error"]["code"] == "CONFLICT"
    assert list(reply.json()["error"]["details"]["fields"]) == ["name"]
    assert Location.objects.filter(merchant=merchant).count() == 1


def test_renaming_onto_a_taken_name_is_a_409_and_keeps_the_old_name(admin, merchant):
    LocationFactory(merchant=merchant, name="Lobby")
    station = LocationFactory(merchant=merchant, name="Station")
    reply = admin.patch(f"/api/v1/locations/{station.pk}", {"name": "Lobby"}, format="json")
    assert reply.status_code == 409, reply.content
    station.refresh_from_db()
    assert station.name == "Station"


@pytest.mark.parametrize("merchant_id", [999_999, 10**30, -1])
def test_a_merchant_that_does_not_exist_is_a_400(staff_client, merchant_id):
    platform = staff_client(Role.ADMIN, is_platform_staff=True)
    reply = platform.post("/api/v1/locations", {"merchant_id": merchant_id, "name": "X"}, format="json")
    assert reply.status_code == 400, reply.content
    assert "merchant_id" in reply.json()["error"]["details"]["fields"]
    assert not Location.objects.exists()


def test_an_over_long_city_is_a_400_naming_it(admin, merchant):
    reply = admin.post(
        "/api/v1/locations", {"merchant_id": merchant.pk, "name": "X", "city": "c" * 81}, format="json"
    )
    assert reply.status_code == 400
    assert "city" in reply.json()["error"]["details"]["fields"]


@pytest.mark.parametrize(
    "query", ["from=not-a-date", "from=2026-13-45T99:00", "query=lat%00te", "payment_method=we%01chat"]
)
def test_garbled_order_search_input_is_a_400(staff_client, merchant, query):
    reply = staff_client(Role.VIEWER, [merchant]).get(f"/api/v1/orders?{query}")
    assert reply.status_code == 400, reply.content
    assert reply.json()["error"]["code"] == "VALIDATION_ERROR"
