"""POST /api/v1/devices/register: a machine joins its merchant's fleet with the merchant's secret."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Merchant, Role
from devices.models import Device, DeviceBin, DeviceCredential, DeviceStatusHistory, StatusEvent
from tests.factories import DeviceBinFactory, LocationFactory

pytestmark = pytest.mark.django_db


def register(client, secret, serial="CM2K-000123", **fields):
    body = {
        "serial": serial,
        "model": "CM-2000",
        "firmware": "1.4.2",
        "provisioning_secret": secret,
        **fields,
    }
    return client.post("/api/v1/devices/register", body, format="json")


def heartbeat(token, device_id, state="idle"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    return client.post(f"/api/v1/devices/{device_id}/status", {"state": state}, format="json")


def test_a_new_serial_is_registered_with_201_and_everything_the_machine_needs(api, merchant, settings):
    reply = register(api, merchant.provisioning_secret, alias="Lobby A")

    assert reply.status_code == 201, reply.content
    data = reply.json()["data"]
    assert set(data) == {"device_id", "token", "heartbeat_interval_s", "server_time"}
    device = Device.objects.get()
    assert data["device_id"] == str(device.pk)
    assert data["heartbeat_interval_s"] == settings.HEARTBEAT_INTERVAL_S == 30
    assert len(data["token"]) >= 32
    server_time = datetime.fromisoformat(data["server_time"])
    assert server_time.utcoffset() == timedelta(0)
    assert abs(server_time - timezone.now()) < timedelta(seconds=5)
    assert (device.merchant, device.serial, device.model, device.firmware, device.alias) == (
        merchant,
        "CM2K-000123",
        "CM-2000",
        "1.4.2",
        "Lobby A",
    )


def test_a_new_machine_is_not_online_until_it_heartbeats(api, merchant):
    register(api, merchant.provisioning_secret)

    device = Device.objects.get()
    assert device.is_online is False
    assert device.last_seen_at is None
    assert list(device.status_history.values_list("event", flat=True)) == [StatusEvent.REGISTERED]


def test_the_new_token_works_for_the_new_device_id(api, merchant):
    data = register(api, merchant.provisioning_secret).json()["data"]

    assert heartbeat(data["token"], data["device_id"]).status_code == 200


def test_a_known_serial_of_the_same_merchant_re_registers_with_200_and_the_same_device_id(
    api, registered, merchant
):
    reply = register(api, merchant.provisioning_secret, serial=registered.device.serial)

    assert reply.status_code == 200, reply.content
    assert reply.json()["data"]["device_id"] == str(registered.device.pk)
    assert Device.objects.count() == 1


def test_re_registering_keeps_bins_history_location_and_alias(api, registered, merchant):
    device = registered.device
    device.location = LocationFactory(merchant=merchant, name="Lobby")
    device.save()
    DeviceBinFactory(device=device, index=1, remaining=420)
    assert heartbeat(registered.token, device.pk, state="brewing").status_code == 200
    history_before = list(device.status_history.order_by("pk").values_list("pk", "event"))

    register(api, merchant.provisioning_secret, serial=device.serial)

    device.refresh_from_db()
    assert device.location.name == "Lobby"
    assert device.alias == "Lobby A"
    assert list(DeviceBin.objects.filter(device=device).values_list("index", "remaining")) == [(1, 420)]
    history_after = list(device.status_history.order_by("pk").values_list("pk", "event"))
    assert history_after[: len(history_before)] == history_before
    assert device.state == "brewing"


def test_re_registering_revokes_the_old_token_and_the_new_one_works(
    api, registered, merchant, django_capture_on_commit_callbacks, expect_api_error
):
    device = registered.device
    assert heartbeat(registered.token, device.pk).status_code == 200  # the old token is in use (and cached)

    with django_capture_on_commit_callbacks(execute=True):
        new_token = register(api, merchant.provisioning_secret, serial=device.serial).json()["data"]["token"]

    assert new_token != registered.token
    expect_api_error(heartbeat(registered.token, device.pk), 401, "UNAUTHORIZED")
    assert heartbeat(new_token, device.pk).status_code == 200
    assert DeviceCredential.objects.filter(device=device, revoked_at__isnull=True).count() == 1


@pytest.mark.parametrize("secret", ["wrong-secret", "", None], ids=["wrong", "blank", "missing"])
def test_a_wrong_or_missing_secret_is_403_and_creates_nothing(api, merchant, secret, expect_api_error):
    body = {"serial": "CM2K-000123", "model": "CM-2000", "firmware": "1.4.2"}
    if secret is not None:
        body["provisioning_secret"] = secret

    expect_api_error(api.post("/api/v1/devices/register", body, format="json"), 403, "FORBIDDEN")

    assert not Device.objects.exists()
    assert not DeviceCredential.objects.exists()
    assert not DeviceStatusHistory.objects.exists()


def test_a_wrong_secret_does_not_re_register_a_known_serial(api, registered, expect_api_error):
    expect_api_error(register(api, "wrong-secret", serial=registered.device.serial), 403, "FORBIDDEN")

    assert heartbeat(registered.token, registered.device.pk).status_code == 200
    assert DeviceCredential.objects.filter(device=registered.device).count() == 1


def test_a_serial_of_another_merchant_is_409_and_nothing_changes(
    api, registered, other_merchant, expect_api_error
):
    device = registered.device
    before = Device.objects.filter(pk=device.pk).values().get()

    reply = register(
        api, other_merchant.provisioning_secret, serial=device.serial, model="XX-1", alias="Stolen"
    )

    expect_api_error(reply, 409, "CONFLICT")
    assert Device.objects.filter(pk=device.pk).values().get() == before
    assert Device.objects.count() == 1
    assert DeviceCredential.objects.filter(device=device).count() == 1
    assert heartbeat(registered.token, device.pk).status_code == 200


def test_the_token_is_stored_hashed_and_appears_in_no_column(api, merchant):
    token = register(api, merchant.provisioning_secret).json()["data"]["token"]

    credential = DeviceCredential.objects.get()
    assert credential.token_hash != token
    assert token.startswith(credential.token_prefix)
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                assert not any(token in str(value) for value in row), f"the token is stored in {table}"


def test_a_suspended_merchants_secret_is_403(api, merchant, expect_api_error):
    Merchant.objects.filter(pk=merchant.pk).update(status=Merchant.Status.SUSPENDED)

    expect_api_error(register(api, merchant.provisioning_secret), 403, "FORBIDDEN")

    assert not Device.objects.exists()


def test_a_rotated_secret_no_longer_registers(api, merchant, expect_api_error):
    from accounts.services import rotate_provisioning_secret

    old_secret = merchant.provisioning_secret
    new_secret = rotate_provisioning_secret(merchant)

    expect_api_error(register(api, old_secret), 403, "FORBIDDEN")
    assert register(api, new_secret).status_code == 201


def test_registration_needs_no_csrf_token_even_beside_a_logged_in_browser_session(make_user, merchant):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user(Role.ADMIN, [merchant]))

    reply = register(client, merchant.provisioning_secret)

    assert reply.status_code == 201, reply.content


@pytest.mark.parametrize("serial", ["", "-leading-dash", "has space", "x" * 65])
def test_a_malformed_serial_is_a_validation_error_naming_serial(api, merchant, serial, expect_api_error):
    error = expect_api_error(
        register(api, merchant.provisioning_secret, serial=serial), 400, "VALIDATION_ERROR"
    )

    assert list(error["details"]["fields"]) == ["serial"]
    assert not Device.objects.exists()
