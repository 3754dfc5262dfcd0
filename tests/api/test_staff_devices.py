"""The staff API: the fleet, merchants, locations and the caller, as the back office uses them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import Merchant, Role
from devices.models import Device, DeviceCredential, Location, StatusEvent
from tests.factories import DeviceBinFactory, DeviceFactory, DeviceStatusHistoryFactory, LocationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(merchant, other_merchant):
    """Three machines of Brew Co in two locations, and one of Other Beans."""
    lobby = LocationFactory(merchant=merchant, name="Lobby")
    office = LocationFactory(merchant=merchant, name="Office")
    devices = {
        "lobby": DeviceFactory(
            merchant=merchant,
            serial="CM2K-000001",
            alias="Lobby A",
            model="CM-2000",
            location=lobby,
            is_online=True,
            state="idle",
        ),
        "office": DeviceFactory(
            merchant=merchant,
            serial="CM2K-000002",
            alias="Office",
            model="CM-3000",
            location=office,
            is_online=True,
            state="brewing",
        ),
        "warehouse": DeviceFactory(
            merchant=merchant,
            serial="XB-77",
            alias="Warehouse",
            model="CM-2000",
            is_online=False,
            state="fault",
        ),
        "other": DeviceFactory(
            merchant=other_merchant,
            serial="CM2K-900001",
            alias="Elsewhere",
            model="CM-2000",
            is_online=True,
            state="idle",
        ),
    }
    return {
        "devices": devices,
        "lobby": lobby,
        "office": office,
        "merchant": merchant,
        "other": other_merchant,
    }


def results(reply):
    assert reply.status_code == 200, reply.content
    return reply.json()["data"]["results"]


def aliases(reply):
    return sorted(device["alias"] for device in results(reply))


# --- The device list and its filters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["Elsewhere", "Lobby A", "Office", "Warehouse"]),
        ({"query": "000002"}, ["Office"]),
        ({"query": "lobby"}, ["Lobby A"]),
        ({"query": "CM-3000"}, ["Office"]),
        ({"query": "no such thing"}, []),
        ({"merchant_id": "@merchant"}, ["Lobby A", "Office", "Warehouse"]),
        ({"merchant_id": "@other"}, ["Elsewhere"]),
        ({"model": "CM-2000"}, ["Elsewhere", "Lobby A", "Warehouse"]),
        ({"status": "online"}, ["Elsewhere", "Lobby A", "Office"]),
        ({"status": "offline"}, ["Warehouse"]),
        ({"status": "idle"}, ["Elsewhere", "Lobby A"]),
        ({"status": "brewing"}, ["Office"]),
        ({"status": "fault"}, ["Warehouse"]),
        ({"status": "cleaning"}, []),
        ({"location": "@lobby"}, ["Lobby A"]),
        ({"location": "@office", "status": "online"}, ["Office"]),
        ({"model": "CM-2000", "status": "online", "merchant_id": "@merchant"}, ["Lobby A"]),
    ],
    ids=lambda value: "-".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else None,
)
def test_the_device_list_returns_exactly_the_matching_devices(staff_client, fleet, params, expected):
    client = staff_client(Role.VIEWER, is_platform_staff=True)
    resolved = {
        name: fleet[value[1:]].pk if value.startswith("@") else value for name, value in params.items()
    }

    reply = client.get("/api/v1/devices", resolved)

    assert aliases(reply) == expected
    assert reply.json()["data"]["count"] == len(expected)


def test_an_unknown_status_filter_is_400_naming_status(staff_client, fleet, expect_api_error):
    client = staff_client(Role.VIEWER, is_platform_staff=True)

    error = expect_api_error(client.get("/api/v1/devices", {"status": "asleep"}), 400, "VALIDATION_ERROR")

    assert list(error["details"]["fields"]) == ["status"]


def test_a_listed_device_shows_its_merchant_location_and_status(staff_client, fleet):
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    listed = {d["serial"]: d for d in results(client.get("/api/v1/devices"))}

    lobby = listed["CM2K-000001"]
    assert lobby["id"] == fleet["devices"]["lobby"].pk
    assert (lobby["merchant_name"], lobby["location_name"], lobby["is_online"], lobby["state"]) == (
        "Brew Co",
        "Lobby",
        True,
        "idle",
    )
    assert listed["XB-77"]["location_id"] is None
    assert "bins" not in lobby


def test_the_device_list_runs_the_same_number_of_queries_for_2_or_30_devices(staff_client, merchant):
    def queries_to_list():
        client = staff_client(Role.VIEWER, [merchant])
        with CaptureQueriesContext(connection) as queries:
            reply = client.get("/api/v1/devices", {"page_size": 100})
        assert reply.status_code == 200
        return len(queries), reply.json()["data"]["count"]

    def add_devices(count):
        for _ in range(count):
            device = DeviceFactory(merchant=merchant, location=LocationFactory(merchant=merchant))
            DeviceBinFactory(device=device)

    add_devices(2)
    few = queries_to_list()
    add_devices(28)
    many = queries_to_list()

    assert (few[1], many[1]) == (2, 30)
    assert many[0] == few[0]


# --- One device ---------------------------------------------------------------------------------


def test_the_device_detail_includes_its_bins_in_index_order(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    DeviceBinFactory(device=device, index=2, material_code="MILK-POWDER")
    DeviceBinFactory(device=device, index=1, material_code="BEAN-ARABICA")
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    reply = client.get(f"/api/v1/devices/{device.pk}")

    assert reply.status_code == 200
    data = reply.json()["data"]
    assert (data["serial"], data["alias"], data["location_name"]) == ("CM2K-000001", "Lobby A", "Lobby")
    assert [(b["index"], b["material"]) for b in data["bins"]] == [(1, "BEAN-ARABICA"), (2, "MILK-POWDER")]


def test_the_device_summary_shows_the_last_day_of_temperature_and_events(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    now = timezone.now()
    DeviceStatusHistoryFactory(device=device, recorded_at=now - timedelta(hours=1), temperature_c=90.0)
    DeviceStatusHistoryFactory(
        device=device,
        recorded_at=now - timedelta(hours=2),
        temperature_c=94.0,
        event=StatusEvent.OFFLINE,
        is_online=False,
    )
    DeviceStatusHistoryFactory(
        device=device,
        recorded_at=now - timedelta(hours=30),
        temperature_c=20.0,
        event=StatusEvent.OFFLINE,
        is_online=False,
    )
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    reply = client.get(f"/api/v1/devices/{device.pk}/summary")

    assert reply.status_code == 200, reply.content
    data = reply.json()["data"]
    assert data["device"]["serial"] == "CM2K-000001"
    assert (data["min_temperature_c"], data["max_temperature_c"], data["avg_temperature_c"]) == (
        90.0,
        94.0,
        92.0,
    )
    assert data["offline_events"] == 1
    assert data["state_changes"] == 0
    assert len(data["recent_history"]) == 3


def test_the_device_bins_endpoint_lists_its_bins(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    DeviceBinFactory(device=device, index=1, remaining=100, level_pct=10)
    DeviceBinFactory(device=fleet["devices"]["office"], index=1)
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    reply = client.get(f"/api/v1/devices/{device.pk}/bins")

    assert reply.status_code == 200, reply.content
    bins = reply.json()["data"]
    assert [(b["index"], b["remaining"], b["is_low"]) for b in bins] == [(1, 100.0, True)]


def test_the_device_history_lists_its_records_newest_first(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    now = timezone.now()
    for hours in (3, 1, 2):
        DeviceStatusHistoryFactory(
            device=device, recorded_at=now - timedelta(hours=hours), temperature_c=90 + hours
        )
    DeviceStatusHistoryFactory(device=fleet["devices"]["office"], recorded_at=now)
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    reply = client.get(f"/api/v1/devices/{device.pk}/history")

    assert reply.status_code == 200, reply.content
    assert [r["temperature_c"] for r in reply.json()["data"]["results"]] == [91.0, 92.0, 93.0]
    assert reply.json()["data"]["count"] == 3


def test_the_device_history_honours_from_and_to(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    now = timezone.now()
    for hours in (4, 3, 2, 1):
        DeviceStatusHistoryFactory(
            device=device, recorded_at=now - timedelta(hours=hours), temperature_c=90 + hours
        )
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    reply = client.get(
        f"/api/v1/devices/{device.pk}/history",
        {"from": (now - timedelta(hours=3)).isoformat(), "to": (now - timedelta(hours=1)).isoformat()},
    )

    assert reply.status_code == 200, reply.content
    assert [r["temperature_c"] for r in reply.json()["data"]["results"]] == [92.0, 93.0]


def test_the_device_history_can_be_read_oldest_first(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    now = timezone.now()
    for hours in (1, 3, 2):
        DeviceStatusHistoryFactory(
            device=device, recorded_at=now - timedelta(hours=hours), temperature_c=90 + hours
        )
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    reply = client.get(f"/api/v1/devices/{device.pk}/history", {"ordering": "recorded_at"})

    assert [r["temperature_c"] for r in results(reply)] == [93.0, 92.0, 91.0]


def test_a_malformed_history_time_is_400(staff_client, fleet, expect_api_error):
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    reply = client.get(f"/api/v1/devices/{fleet['devices']['lobby'].pk}/history", {"from": "yesterday"})

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["from"]


def test_the_device_history_filters_by_event(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    DeviceStatusHistoryFactory(device=device, event=StatusEvent.OFFLINE, is_online=False)
    DeviceStatusHistoryFactory(device=device, event=StatusEvent.SAMPLE)
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    reply = client.get(f"/api/v1/devices/{device.pk}/history", {"event": "offline"})

    assert [r["event"] for r in results(reply)] == ["offline"]


# --- Editing a device ---------------------------------------------------------------------------


def test_ops_may_change_alias_location_and_offline_timeout(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    client = staff_client(Role.OPS, [fleet["merchant"]])

    reply = client.patch(
        f"/api/v1/devices/{device.pk}",
        {"alias": "Front door", "location_id": fleet["office"].pk, "offline_timeout_s": 120},
        format="json",
    )

    assert reply.status_code == 200, reply.content
    data = reply.json()["data"]
    assert (data["alias"], data["location_name"], data["offline_timeout_s"]) == ("Front door", "Office", 120)
    device.refresh_from_db()
    assert (device.alias, device.location_id, device.offline_timeout_s) == (
        "Front door",
        fleet["office"].pk,
        120,
    )


def test_a_patch_changes_only_the_fields_it_names(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    client = staff_client(Role.OPS, [fleet["merchant"]])

    client.patch(f"/api/v1/devices/{device.pk}", {"alias": "Front door"}, format="json")

    device.refresh_from_db()
    assert (device.alias, device.location_id, device.offline_timeout_s) == (
        "Front door",
        fleet["lobby"].pk,
        None,
    )


def test_ops_may_clear_the_location_and_the_timeout_override(staff_client, fleet):
    device = fleet["devices"]["lobby"]
    Device.objects.filter(pk=device.pk).update(offline_timeout_s=300)
    client = staff_client(Role.OPS, [fleet["merchant"]])

    reply = client.patch(
        f"/api/v1/devices/{device.pk}", {"location_id": None, "offline_timeout_s": None}, format="json"
    )

    assert reply.status_code == 200, reply.content
    device.refresh_from_db()
    assert (device.location_id, device.offline_timeout_s) == (None, None)


def test_a_viewer_may_not_edit_a_device(staff_client, fleet, expect_api_error):
    device = fleet["devices"]["lobby"]
    client = staff_client(Role.VIEWER, [fleet["merchant"]])

    expect_api_error(
        client.patch(
            f"/api/v1/devices/{device.pk}", {"alias": "Front door", "offline_timeout_s": 60}, format="json"
        ),
        403,
        "FORBIDDEN",
    )

    device.refresh_from_db()
    assert (device.alias, device.offline_timeout_s) == ("Lobby A", None)


def test_a_location_of_another_merchant_is_refused_even_to_a_user_of_both(
    staff_client, fleet, expect_api_error
):
    device = fleet["devices"]["lobby"]
    elsewhere = LocationFactory(merchant=fleet["other"], name="Elsewhere")
    client = staff_client(Role.OPS, [fleet["merchant"], fleet["other"]])

    reply = client.patch(
        f"/api/v1/devices/{device.pk}", {"location_id": elsewhere.pk, "alias": "Moved"}, format="json"
    )

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert "another merchant" in error["message"]
    device.refresh_from_db()
    assert (device.location_id, device.alias) == (fleet["lobby"].pk, "Lobby A")


def test_a_location_of_another_merchant_is_refused_to_platform_staff(staff_client, fleet, expect_api_error):
    device = fleet["devices"]["lobby"]
    elsewhere = LocationFactory(merchant=fleet["other"], name="Elsewhere")
    client = staff_client(Role.OPS, is_platform_staff=True)

    reply = client.patch(f"/api/v1/devices/{device.pk}", {"location_id": elsewhere.pk}, format="json")

    expect_api_error(reply, 400, "VALIDATION_ERROR")
    device.refresh_from_db()
    assert device.location_id == fleet["lobby"].pk


# --- Tokens -------------------------------------------------------------------------------------


def heartbeat(token, device):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    return client.post(f"/api/v1/devices/{device.pk}/status", {"state": "idle"}, format="json")


def test_ops_rotating_a_token_gets_a_new_one_and_the_old_one_stops_working(
    staff_client, registered, merchant, django_capture_on_commit_callbacks, expect_api_error
):
    device = registered.device
    assert heartbeat(registered.token, device).status_code == 200
    client = staff_client(Role.OPS, [merchant])

    with django_capture_on_commit_callbacks(execute=True):
        reply = client.post(f"/api/v1/devices/{device.pk}/rotate-token")

    assert reply.status_code == 200, reply.content
    new_token = reply.json()["data"]["token"]
    expect_api_error(heartbeat(registered.token, device), 401, "UNAUTHORIZED")
    assert heartbeat(new_token, device).status_code == 200


def test_ops_revoking_a_token_locks_the_machine_out(
    staff_client, registered, merchant, django_capture_on_commit_callbacks, expect_api_error
):
    device = registered.device
    assert heartbeat(registered.token, device).status_code == 200
    client = staff_client(Role.OPS, [merchant])

    with django_capture_on_commit_callbacks(execute=True):
        reply = client.post(f"/api/v1/devices/{device.pk}/revoke-token")

    assert reply.json() == {"ok": True, "data": {"revoked": 1}}
    expect_api_error(heartbeat(registered.token, device), 401, "UNAUTHORIZED")
    assert not DeviceCredential.objects.filter(device=device, revoked_at__isnull=True).exists()


@pytest.mark.parametrize("action", ["rotate-token", "revoke-token"])
def test_a_viewer_may_not_rotate_or_revoke_a_token(
    staff_client, registered, merchant, action, expect_api_error
):
    client = staff_client(Role.VIEWER, [merchant])

    expect_api_error(client.post(f"/api/v1/devices/{registered.device.pk}/{action}"), 403, "FORBIDDEN")

    assert heartbeat(registered.token, registered.device).status_code == 200
    assert DeviceCredential.objects.filter(device=registered.device).count() == 1


# --- Merchants, locations, me -------------------------------------------------------------------


def test_a_user_lists_their_merchant(staff_client, merchant, other_merchant):
    client = staff_client(Role.VIEWER, [merchant])

    assert [m["name"] for m in results(client.get("/api/v1/merchants"))] == ["Brew Co"]


def test_an_admin_may_edit_their_merchant(staff_client, merchant):
    client = staff_client(Role.ADMIN, [merchant])

    reply = client.patch(f"/api/v1/merchants/{merchant.pk}", {"contact_name": "Li Wei"}, format="json")

    assert reply.status_code == 200, reply.content
    merchant.refresh_from_db()
    assert merchant.contact_name == "Li Wei"


@pytest.mark.parametrize("role", [Role.OPS, Role.VIEWER])
def test_ops_and_viewers_may_not_edit_a_merchant(staff_client, merchant, role, expect_api_error):
    client = staff_client(role, [merchant])

    expect_api_error(
        client.patch(f"/api/v1/merchants/{merchant.pk}", {"contact_name": "Li Wei"}, format="json"),
        403,
        "FORBIDDEN",
    )

    merchant.refresh_from_db()
    assert merchant.contact_name == ""


def test_a_merchants_own_admin_cannot_lift_its_suspension(staff_client, merchant):
    Merchant.objects.filter(pk=merchant.pk).update(status=Merchant.Status.SUSPENDED)
    client = staff_client(Role.ADMIN, [merchant])

    reply = client.patch(
        f"/api/v1/merchants/{merchant.pk}", {"status": "active", "contact_name": "Li Wei"}, format="json"
    )

    assert reply.status_code == 200, reply.content
    merchant.refresh_from_db()
    assert (merchant.status, merchant.contact_name) == (Merchant.Status.SUSPENDED, "Li Wei")


def test_a_platform_admin_may_suspend_a_merchant(staff_client, merchant):
    client = staff_client(Role.ADMIN, is_platform_staff=True)

    reply = client.patch(f"/api/v1/merchants/{merchant.pk}", {"status": "suspended"}, format="json")

    assert reply.status_code == 200, reply.content
    merchant.refresh_from_db()
    assert merchant.status == Merchant.Status.SUSPENDED


def test_an_admin_may_create_a_location_for_their_merchant(staff_client, merchant):
    client = staff_client(Role.ADMIN, [merchant])

    reply = client.post(
        "/api/v1/locations",
        {"merchant_id": merchant.pk, "name": "Station", "city": "Hangzhou"},
        format="json",
    )

    assert reply.status_code == 201, reply.content
    location = Location.objects.get(name="Station")
    assert (location.merchant, location.city) == (merchant, "Hangzhou")
    assert reply.json()["data"]["id"] == location.pk


@pytest.mark.parametrize("role", [Role.OPS, Role.VIEWER])
def test_ops_and_viewers_may_not_create_a_location(staff_client, merchant, role, expect_api_error):
    client = staff_client(role, [merchant])

    expect_api_error(
        client.post("/api/v1/locations", {"merchant_id": merchant.pk, "name": "Station"}, format="json"),
        403,
        "FORBIDDEN",
    )

    assert not Location.objects.exists()


def test_the_location_list_filters_by_city(staff_client, merchant):
    LocationFactory(merchant=merchant, name="Bund", city="Shanghai")
    LocationFactory(merchant=merchant, name="West Lake", city="Hangzhou")
    client = staff_client(Role.VIEWER, [merchant])

    assert [loc["name"] for loc in results(client.get("/api/v1/locations", {"city": "hangzhou"}))] == [
        "West Lake"
    ]


@pytest.mark.parametrize(
    ("role", "capabilities"),
    [
        (Role.VIEWER, ["view"]),
        (Role.OPS, ["manage_materials", "manage_recipes", "operate_devices", "refund", "view"]),
        (
            Role.ADMIN,
            [
                "manage_materials",
                "manage_merchants",
                "manage_recipes",
                "manage_settings",
                "manage_users",
                "operate_devices",
                "refund",
                "view",
            ],
        ),
    ],
)
def test_me_shows_the_role_and_its_capabilities(staff_client, merchant, role, capabilities):
    client = staff_client(role, [merchant])

    data = client.get("/api/v1/me").json()["data"]

    assert (data["email"], data["role"], data["is_platform_staff"]) == (client.user.email, role, False)
    assert data["capabilities"] == capabilities


# --- Authentication for scripts and browsers, schema and docs ----------------------------------


def test_an_engineers_script_authenticates_with_a_drf_token(make_user, fleet):
    user = make_user(Role.VIEWER, [fleet["merchant"]])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    assert aliases(client.get("/api/v1/devices")) == ["Lobby A", "Office", "Warehouse"]


def test_a_logged_in_browser_gets_the_browsable_api(make_user, fleet):
    client = APIClient()
    client.force_login(make_user(Role.VIEWER, [fleet["merchant"]]))

    reply = client.get("/api/v1/devices", HTTP_ACCEPT="text/html")

    assert reply.status_code == 200
    assert reply["Content-Type"].startswith("text/html")
    page = reply.content.decode()
    assert "CM2K-000001" in page
    assert "CM2K-900001" not in page


def test_a_logged_in_browser_session_reads_json_too(make_user, fleet):
    client = APIClient()
    client.force_login(make_user(Role.VIEWER, [fleet["merchant"]]))

    assert aliases(client.get("/api/v1/devices")) == ["Lobby A", "Office", "Warehouse"]


def test_the_openapi_schema_describes_the_machine_protocol_and_the_staff_api(api):
    reply = api.get("/api/v1/schema", {"format": "json"})

    assert reply.status_code == 200, reply.content
    schema = reply.json()
    assert schema["info"]["title"] == "coffeeshop API"
    for path in (
        "/api/v1/devices/register",
        "/api/v1/devices/{device_id}/status",
        "/api/v1/devices/{device_id}/materials/report",
        "/api/v1/devices",
        "/api/v1/devices/{id}/history",
        "/api/v1/merchants",
        "/api/v1/locations",
        "/api/v1/me",
        "/api/v1/health",
    ):
        assert path in schema["paths"], path


def test_the_openapi_schema_is_served_as_yaml_by_default(api):
    reply = api.get("/api/v1/schema")

    assert reply.status_code == 200
    assert b"openapi:" in reply.content


def test_the_api_docs_render(api):
    page = api.get("/api/v1/docs")
    script = api.get("/api/v1/docs", {"script": ""})  # a file of its own: no inline script (CSP)

    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert b"swagger" in page.content.lower()
    assert b'<script src="/api/v1/docs?script="></script>' in page.content
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"/api/v1/schema" in script.content
