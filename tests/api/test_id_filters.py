"""A list filtered by a row id takes a whole number a 64-bit key can hold; anything else is a 400
naming the parameter, never a 500 (`?device_id=-2.8e75` was one on SQLite; found by schemathesis,
tests/e2e/test_fuzz_api.py). A real id still filters."""

import pytest

from accounts.models import Role

pytestmark = pytest.mark.django_db

ID_FILTERS = [
    ("/api/v1/orders", "device_id"),
    ("/api/v1/orders", "merchant_id"),
    ("/api/v1/orders", "location"),
    ("/api/v1/devices", "merchant_id"),
    ("/api/v1/devices", "location"),
    ("/api/v1/locations", "merchant_id"),
    ("/api/v1/commands", "device_id"),
    ("/api/v1/commands", "batch_id"),
    ("/api/v1/alarms", "device_id"),
    ("/api/v1/alarms", "merchant_id"),
]


@pytest.fixture
def platform(staff_client):
    return staff_client(Role.ADMIN, is_platform_staff=True)


@pytest.mark.parametrize("value", ["-2.8106734144030592e+75", str(2**63), "1.5"])
@pytest.mark.parametrize(("path", "parameter"), ID_FILTERS)
def test_an_id_no_key_can_hold_is_a_400_naming_the_parameter(
    platform, path, parameter, value, expect_api_error
):
    error = expect_api_error(platform.get(path, {parameter: value}), 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == [parameter], error


def test_a_real_id_still_filters(platform, registered, other_merchant):
    assert (
        platform.get("/api/v1/devices", {"merchant_id": registered.device.merchant_id}).json()["data"][
            "count"
        ]
        == 1
    )
    assert platform.get("/api/v1/devices", {"merchant_id": other_merchant.pk}).json()["data"]["count"] == 0
