import pytest

pytestmark = pytest.mark.django_db


def test_register_heartbeat_and_materials_round_trip(api, merchant, materials):
    reply = api.post(
        "/api/v1/devices/register",
        {
            "serial": "CM2K-000999",
            "model": "CM-2000",
            "firmware": "1.4.2",
            "provisioning_secret": merchant.provisioning_secret,
        },
        format="json",
    )
    assert reply.status_code == 201, reply.content
    data = reply.json()["data"]
    api.credentials(HTTP_AUTHORIZATION=f"Device {data['token']}")
    beat = api.post(
        f"/api/v1/devices/{data['device_id']}/status",
        {
            "state": "idle",
            "temperature_c": 92.4,
            "bins": [
                {"index": 1, "material": "BEAN-ARABICA", "remaining": 820, "capacity": 1000, "unit": "g"}
            ],
        },
        format="json",
    )
    assert beat.status_code == 200, beat.content
    assert beat.json()["data"]["commands"] == []
    bad = api.post(
        f"/api/v1/devices/{data['device_id']}/materials/report",
        {
            "bins": [
                {"index": 1, "material": "BEAN-ARABICA", "remaining": 10, "capacity": 1000},
                {"index": 2, "material": "NOPE", "remaining": 10, "capacity": 1000},
            ]
        },
        format="json",
    )
    assert bad.status_code == 400
    assert list(bad.json()["error"]["details"]["fields"]) == ["bins.1.material"]
