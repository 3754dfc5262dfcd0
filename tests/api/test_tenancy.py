"""A user of merchant A never sees, counts or changes anything of merchant B, over HTTP or the socket."""

import importlib

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Role
from devices.models import Device, DeviceCredential, Location
from devices.services import DeviceIdentity, StatusReading, record_heartbeat
from tests.factories import DeviceFactory, LocationFactory

ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture
def two_merchants(merchant, other_merchant, machine_client):
    """Brew Co (A) and Other Beans (B), each with a location and a machine with a token."""
    a_location = LocationFactory(merchant=merchant, name="A Lobby")
    b_location = LocationFactory(merchant=other_merchant, name="B Lobby")
    a_device = DeviceFactory(merchant=merchant, serial="A-0001", alias="A machine", location=a_location)
    b_device = DeviceFactory(merchant=other_merchant, serial="B-0001", alias="B machine", location=b_location)
    return {
        "a": merchant,
        "b": other_merchant,
        "a_location": a_location,
        "b_location": b_location,
        "a_device": a_device,
        "b_device": b_device,
        "b_machine": machine_client(b_device),
    }


def data(reply):
    assert reply.status_code == 200, reply.content
    return reply.json()["data"]


def serials(reply):
    return [d["serial"] for d in data(reply)["results"]]


# --- HTTP ---------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestAUserOfMerchantA:
    @pytest.fixture
    def client(self, staff_client, two_merchants):
        return staff_client(Role.ADMIN, [two_merchants["a"]])

    def test_lists_and_counts_only_as_devices(self, client):
        listed = data(client.get("/api/v1/devices"))

        assert [d["serial"] for d in listed["results"]] == ["A-0001"]
        assert listed["count"] == 1

    def test_lists_and_counts_only_as_locations(self, client):
        listed = data(client.get("/api/v1/locations"))

        assert [loc["name"] for loc in listed["results"]] == ["A Lobby"]
        assert listed["count"] == 1

    def test_lists_only_their_merchant(self, client):
        listed = data(client.get("/api/v1/merchants"))

        assert [m["name"] for m in listed["results"]] == ["Brew Co"]
        assert listed["count"] == 1

    @pytest.mark.parametrize("suffix", ["", "/summary", "/bins", "/history"])
    def test_gets_404_for_bs_device(self, client, two_merchants, suffix, expect_api_error):
        expect_api_error(
            client.get(f"/api/v1/devices/{two_merchants['b_device'].pk}{suffix}"), 404, "NOT_FOUND"
        )

    def test_gets_404_patching_bs_device_and_it_is_unchanged(self, client, two_merchants, expect_api_error):
        device = two_merchants["b_device"]

        reply = client.patch(
            f"/api/v1/devices/{device.pk}", {"alias": "Mine now", "location_id": None}, format="json"
        )

        expect_api_error(reply, 404, "NOT_FOUND")
        device.refresh_from_db()
        assert (device.alias, device.location_id) == ("B machine", two_merchants["b_location"].pk)

    @pytest.mark.parametrize("action", ["rotate-token", "revoke-token"])
    def test_gets_404_for_bs_token_and_bs_machine_keeps_working(
        self, client, two_merchants, action, expect_api_error
    ):
        b_machine = two_merchants["b_machine"]

        expect_api_error(client.post(f"/api/v1/devices/{b_machine.device.pk}/{action}"), 404, "NOT_FOUND")

        assert DeviceCredential.objects.filter(device=b_machine.device, revoked_at__isnull=True).count() == 1
        reply = b_machine.post(
            f"/api/v1/devices/{b_machine.device.pk}/status", {"state": "idle"}, format="json"
        )
        assert reply.status_code == 200

    def test_filtering_by_bs_merchant_id_returns_an_empty_list(self, client, two_merchants):
        listed = data(client.get("/api/v1/devices", {"merchant_id": two_merchants["b"].pk}))

        assert (listed["results"], listed["count"]) == ([], 0)

    def test_filtering_by_bs_location_returns_an_empty_list(self, client, two_merchants):
        assert serials(client.get("/api/v1/devices", {"location": two_merchants["b_location"].pk})) == []

    def test_filtering_locations_by_bs_merchant_id_returns_an_empty_list(self, client, two_merchants):
        assert data(client.get("/api/v1/locations", {"merchant_id": two_merchants["b"].pk}))["results"] == []

    def test_searching_for_bs_serial_finds_nothing(self, client):
        assert serials(client.get("/api/v1/devices", {"query": "B-0001"})) == []

    def test_gets_404_for_bs_merchant_and_location(self, client, two_merchants, expect_api_error):
        expect_api_error(client.get(f"/api/v1/merchants/{two_merchants['b'].pk}"), 404, "NOT_FOUND")
        expect_api_error(client.get(f"/api/v1/locations/{two_merchants['b_location'].pk}"), 404, "NOT_FOUND")

    def test_cannot_edit_bs_merchant(self, client, two_merchants, expect_api_error):
        merchant = two_merchants["b"]

        expect_api_error(
            client.patch(f"/api/v1/merchants/{merchant.pk}", {"contact_name": "Mallory"}, format="json"),
            404,
            "NOT_FOUND",
        )

        merchant.refresh_from_db()
        assert merchant.contact_name == ""

    def test_cannot_edit_or_delete_bs_location(self, client, two_merchants, expect_api_error):
        location = two_merchants["b_location"]

        expect_api_error(
            client.patch(f"/api/v1/locations/{location.pk}", {"name": "Mine"}, format="json"),
            404,
            "NOT_FOUND",
        )
        expect_api_error(client.delete(f"/api/v1/locations/{location.pk}"), 404, "NOT_FOUND")

        assert Location.objects.get(pk=location.pk).name == "B Lobby"

    def test_cannot_create_a_location_for_b(self, client, two_merchants, expect_api_error):
        reply = client.post(
            "/api/v1/locations", {"merchant_id": two_merchants["b"].pk, "name": "Planted"}, format="json"
        )

        error = expect_api_error(reply, 400, "VALIDATION_ERROR")
        assert list(error["details"]["fields"]) == ["merchant_id"]
        assert not Location.objects.filter(name="Planted").exists()

    def test_cannot_move_their_location_to_b(self, client, two_merchants, expect_api_error):
        location = two_merchants["a_location"]

        reply = client.patch(
            f"/api/v1/locations/{location.pk}", {"merchant_id": two_merchants["b"].pk}, format="json"
        )

        expect_api_error(reply, 400, "VALIDATION_ERROR")
        assert Location.objects.get(pk=location.pk).merchant_id == two_merchants["a"].pk

    def test_cannot_put_their_device_in_bs_location(self, client, two_merchants, expect_api_error):
        device = two_merchants["a_device"]

        reply = client.patch(
            f"/api/v1/devices/{device.pk}", {"location_id": two_merchants["b_location"].pk}, format="json"
        )

        error = expect_api_error(reply, 400, "VALIDATION_ERROR")
        assert list(error["details"]["fields"]) == ["location_id"]
        assert Device.objects.get(pk=device.pk).location_id == two_merchants["a_location"].pk

    def test_does_not_learn_whether_bs_device_exists(self, client, two_merchants, expect_api_error):
        b_reply = client.get(f"/api/v1/devices/{two_merchants['b_device'].pk}")
        missing_reply = client.get("/api/v1/devices/987654")

        assert expect_api_error(b_reply, 404, "NOT_FOUND") == expect_api_error(
            missing_reply, 404, "NOT_FOUND"
        )


@pytest.mark.django_db
def test_a_user_with_no_merchant_sees_nothing(staff_client, two_merchants):
    client = staff_client(Role.ADMIN, [])

    for url in ("/api/v1/devices", "/api/v1/locations", "/api/v1/merchants"):
        listed = data(client.get(url))
        assert (listed["results"], listed["count"]) == ([], 0), url


@pytest.mark.django_db
def test_a_user_with_no_merchant_gets_404_for_any_device(staff_client, two_merchants, expect_api_error):
    client = staff_client(Role.ADMIN, [])

    expect_api_error(client.get(f"/api/v1/devices/{two_merchants['a_device'].pk}"), 404, "NOT_FOUND")


@pytest.mark.django_db
def test_a_user_who_lost_access_to_a_merchant_no_longer_sees_it(make_user, two_merchants):
    from accounts.services import revoke_merchant_access

    user = make_user(Role.VIEWER, [two_merchants["a"], two_merchants["b"]])
    revoke_merchant_access(user, two_merchants["b"])
    client = APIClient()
    client.force_authenticate(user)

    assert serials(client.get("/api/v1/devices")) == ["A-0001"]


@pytest.mark.django_db
def test_a_user_of_both_merchants_sees_both(staff_client, two_merchants):
    client = staff_client(Role.VIEWER, [two_merchants["a"], two_merchants["b"]])

    assert sorted(serials(client.get("/api/v1/devices"))) == ["A-0001", "B-0001"]


@pytest.mark.django_db
def test_platform_staff_see_every_merchant(staff_client, two_merchants):
    client = staff_client(Role.VIEWER, is_platform_staff=True)

    assert sorted(serials(client.get("/api/v1/devices"))) == ["A-0001", "B-0001"]
    assert data(client.get("/api/v1/devices"))["count"] == 2
    assert sorted(m["name"] for m in data(client.get("/api/v1/merchants"))["results"]) == [
        "Brew Co",
        "Other Beans",
    ]
    assert data(client.get(f"/api/v1/devices/{two_merchants['b_device'].pk}"))["serial"] == "B-0001"


# --- The staff live socket ----------------------------------------------------------------------


@pytest.fixture
def application(monkeypatch):
    """The ASGI application. Its module sets process-wide env defaults (a DB pool for ASGI servers) on
    import; they are put back so that nothing else in this test process inherits them."""
    for name in ("DB_POOL", "DB_CONN_MAX_AGE"):
        monkeypatch.delenv(name, raising=False)
    return importlib.import_module("coffeeshop.asgi").application


@pytest.fixture
def fresh_channel_layer():
    """A channel layer built for this test's event loop, from the settings of this run."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def session_cookie(make_user):
    """session_cookie(user) -> the Cookie header of a logged-in admin session of `user`."""

    def login(user):
        client = Client()
        client.force_login(user)
        return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())

    return login


@pytest.fixture
def offline_machines(merchant, other_merchant):
    """One offline machine per merchant, so the next heartbeat of each takes the full path and pushes."""
    return {
        "a": DeviceFactory(merchant=merchant, serial="A-0001", is_online=False, state="idle"),
        "b": DeviceFactory(merchant=other_merchant, serial="B-0001", is_online=False, state="idle"),
    }


def heartbeat_of(device):
    return sync_to_async(record_heartbeat)(
        DeviceIdentity(device.pk, device.merchant_id), StatusReading(state="brewing")
    )


async def receive_all(communicator, quiet_s=1.0) -> list[dict]:
    """Every message until the socket has been quiet for `quiet_s` (without timing the socket out)."""
    messages = []
    while not await communicator.receive_nothing(timeout=quiet_s):
        messages.append(await communicator.receive_json_from())
    return messages


@pytest.mark.django_db(transaction=True)
async def test_a_user_of_a_hears_as_device_status_and_never_bs(
    application, make_user, merchant, offline_machines, session_cookie, fresh_channel_layer, settings
):
    settings.LIVE_POLL_INTERVAL_S = 0.2  # without Redis the socket also polls: it must not leak either
    user = await sync_to_async(make_user)(Role.VIEWER, [merchant])
    communicator = WebsocketCommunicator(
        application, "/ws/live/", headers=[ORIGIN, await sync_to_async(session_cookie)(user)]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_json_from() == {"type": "hello", "merchant_ids": [merchant.pk]}

    await heartbeat_of(offline_machines["b"])
    await heartbeat_of(offline_machines["a"])

    first = await communicator.receive_json_from(timeout=5)
    messages = [first, *await receive_all(communicator)]
    await communicator.disconnect()
    assert first["type"] == "device.status"
    assert first["data"]["id"] == offline_machines["a"].pk
    assert first["data"]["is_online"] is True
    assert first["data"]["state"] == "brewing"
    assert {m["data"]["id"] for m in messages} == {offline_machines["a"].pk}
    assert "B-0001" not in str(messages)


@pytest.mark.django_db(transaction=True)
async def test_platform_staff_hear_every_merchants_device_status(
    application, make_user, offline_machines, session_cookie, fresh_channel_layer
):
    user = await sync_to_async(make_user)(Role.VIEWER, [], is_platform_staff=True)
    communicator = WebsocketCommunicator(
        application, "/ws/live/", headers=[ORIGIN, await sync_to_async(session_cookie)(user)]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_json_from() == {"type": "hello", "merchant_ids": None}

    await heartbeat_of(offline_machines["a"])
    await heartbeat_of(offline_machines["b"])

    heard = {(await communicator.receive_json_from(timeout=5))["data"]["serial"] for _ in range(2)}
    await communicator.disconnect()
    assert heard == {"A-0001", "B-0001"}


@pytest.mark.django_db(transaction=True)
async def test_an_anonymous_socket_is_closed(application, fresh_channel_layer):
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[ORIGIN])

    connected, code = await communicator.connect()

    assert connected is False
    assert code == 4401


@pytest.mark.django_db(transaction=True)
async def test_a_socket_of_a_user_who_may_not_log_into_the_admin_is_closed(
    application, make_user, merchant, session_cookie, fresh_channel_layer
):
    user = await sync_to_async(make_user)(Role.ADMIN, [merchant], is_staff=False)
    communicator = WebsocketCommunicator(
        application, "/ws/live/", headers=[ORIGIN, await sync_to_async(session_cookie)(user)]
    )

    connected, _ = await communicator.connect()

    assert connected is False


@pytest.mark.django_db(transaction=True)
async def test_a_socket_from_a_foreign_origin_is_refused(
    application, make_user, merchant, session_cookie, fresh_channel_layer
):
    user = await sync_to_async(make_user)(Role.VIEWER, [merchant])
    communicator = WebsocketCommunicator(
        application,
        "/ws/live/",
        headers=[(b"origin", b"http://evil.example"), await sync_to_async(session_cookie)(user)],
    )

    connected, _ = await communicator.connect()

    assert connected is False
