"""Every reply speaks the protocol's envelope: the right code and status on every error path."""

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import Merchant, Role
from devices.models import Device, DeviceCredential
from devices.services import revoke_tokens
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

LEAKS = ["SELECT", "secret", "/etc/passwd", "Traceback", "RuntimeError", 'File "', "/work/", ".py"]


def heartbeat(client, device_id, **fields):
    return client.post(f"/api/v1/devices/{device_id}/status", {"state": "idle", **fields}, format="json")


def register(client, merchant, serial="CM2K-000777", **fields):
    body = {
        "serial": serial,
        "model": "CM-2000",
        "firmware": "1.4.2",
        "provisioning_secret": merchant.provisioning_secret,
        **fields,
    }
    return client.post("/api/v1/devices/register", body, format="json")


@pytest.fixture
def throttle_rates(monkeypatch, settings):
    """throttle_rates(device=..., register=..., user=...): lower the rates for one test.

    DRF copies DEFAULT_THROTTLE_RATES onto the throttle class when it is imported, so the class attribute
    is what must change.
    """

    def lower(**rates):
        merged = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": merged}
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", merged)

    return lower


# --- Success --------------------------------------------------------------------------------------


def test_a_success_reply_is_ok_true_with_the_data(staff_client, merchant):
    client = staff_client(Role.VIEWER, [merchant])

    reply = client.get("/api/v1/me")

    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"ok", "data"}
    assert body["ok"] is True
    assert body["data"]["email"] == client.user.email


def test_a_list_reply_carries_count_page_and_results_inside_data(staff_client, merchant):
    DeviceFactory.create_batch(3, merchant=merchant)
    client = staff_client(Role.VIEWER, [merchant])

    body = client.get("/api/v1/devices", {"page": 2, "page_size": 2}).json()

    assert body["ok"] is True
    data = body["data"]
    assert (data["count"], data["page"], data["page_size"]) == (3, 2, 2)
    assert len(data["results"]) == 1
    assert data["next"] is None
    assert "page_size=2" in data["previous"]


def test_page_size_is_capped_at_200(staff_client, merchant):
    Device.objects.bulk_create(DeviceFactory.build(merchant=merchant) for _ in range(205))
    client = staff_client(Role.VIEWER, [merchant])

    data = client.get("/api/v1/devices", {"page_size": 1000}).json()["data"]

    assert data["count"] == 205
    assert data["page_size"] == 200
    assert len(data["results"]) == 200


def test_a_page_past_the_end_is_404_in_the_envelope(staff_client, merchant, expect_api_error):
    DeviceFactory(merchant=merchant)
    client = staff_client(Role.VIEWER, [merchant])

    expect_api_error(client.get("/api/v1/devices", {"page": 5}), 404, "NOT_FOUND")


# --- 400 ------------------------------------------------------------------------------------------


def test_a_nested_validation_error_names_the_field_by_its_dotted_path(machine, expect_api_error):
    reply = heartbeat(
        machine,
        machine.device.pk,
        bins=[{"index": 1, "material": "BEAN-ARABICA", "remaining": 1200, "capacity": 1000}],
    )

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["bins.0.remaining"]
    assert error["message"].startswith("bins.0.remaining: ")


def test_a_missing_field_is_a_validation_error_naming_it(api, merchant, expect_api_error):
    reply = api.post(
        "/api/v1/devices/register",
        {"model": "CM-2000", "provisioning_secret": merchant.provisioning_secret},
        format="json",
    )

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["serial"]
    assert not Device.objects.exists()


def test_several_invalid_fields_are_all_named(machine, expect_api_error):
    reply = heartbeat(machine, machine.device.pk, state="dancing", temperature_c=900, ip="not-an-ip")

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert set(error["details"]["fields"]) == {"state", "temperature_c", "ip"}


def test_a_body_that_is_not_json_is_a_validation_error(machine, expect_api_error):
    reply = machine.post(
        f"/api/v1/devices/{machine.device.pk}/status", "{not json", content_type="application/json"
    )

    expect_api_error(reply, 400, "VALIDATION_ERROR")


def test_a_staff_validation_error_names_the_field(staff_client, merchant, expect_api_error):
    device = DeviceFactory(merchant=merchant)
    client = staff_client(Role.OPS, [merchant])

    reply = client.patch(f"/api/v1/devices/{device.pk}", {"offline_timeout_s": 5}, format="json")

    error = expect_api_error(reply, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["offline_timeout_s"]
    device.refresh_from_db()
    assert device.offline_timeout_s is None


# --- 401 ------------------------------------------------------------------------------------------


def test_a_machine_call_without_a_token_is_401(api, registered, expect_api_error):
    expect_api_error(heartbeat(api, registered.device.pk), 401, "UNAUTHORIZED")


def test_a_machine_call_with_an_unknown_token_is_401(api, registered, expect_api_error):
    api.credentials(HTTP_AUTHORIZATION="Device not-a-token")

    expect_api_error(heartbeat(api, registered.device.pk), 401, "UNAUTHORIZED")


def test_a_malformed_device_authorization_header_is_401(api, registered, expect_api_error):
    api.credentials(HTTP_AUTHORIZATION=f"Device {registered.token} extra")

    expect_api_error(heartbeat(api, registered.device.pk), 401, "UNAUTHORIZED")


def test_a_machine_call_with_a_revoked_token_is_401(
    machine, django_capture_on_commit_callbacks, expect_api_error
):
    assert heartbeat(machine, machine.device.pk).status_code == 200  # the token is known (and cached)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_tokens(machine.device)

    expect_api_error(heartbeat(machine, machine.device.pk), 401, "UNAUTHORIZED")
    assert not DeviceCredential.objects.filter(device=machine.device, revoked_at__isnull=True).exists()


def test_a_staff_endpoint_without_login_is_401(api, expect_api_error):
    expect_api_error(api.get("/api/v1/devices"), 401, "UNAUTHORIZED")


def test_a_staff_endpoint_with_an_unknown_drf_token_is_401(api, expect_api_error):
    api.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    expect_api_error(api.get("/api/v1/devices"), 401, "UNAUTHORIZED")


def test_a_device_token_opens_no_staff_endpoint(machine, expect_api_error):
    expect_api_error(machine.get("/api/v1/devices"), 401, "UNAUTHORIZED")


# --- 403 ------------------------------------------------------------------------------------------


def test_a_token_on_another_devices_path_is_403(machine, merchant, expect_api_error):
    other = DeviceFactory(merchant=merchant)

    expect_api_error(heartbeat(machine, other.pk), 403, "FORBIDDEN")


def test_a_viewer_writing_is_403(staff_client, merchant, expect_api_error):
    device = DeviceFactory(merchant=merchant, alias="Lobby")
    client = staff_client(Role.VIEWER, [merchant])

    expect_api_error(
        client.patch(f"/api/v1/devices/{device.pk}", {"alias": "Hall"}, format="json"), 403, "FORBIDDEN"
    )
    device.refresh_from_db()
    assert device.alias == "Lobby"


def test_a_user_who_may_not_log_into_the_admin_is_refused(make_user, merchant, expect_api_error):
    user = make_user(Role.ADMIN, [merchant], is_staff=False)
    client = APIClient()
    client.force_authenticate(user)

    expect_api_error(client.get("/api/v1/devices"), 403, "FORBIDDEN")


def test_a_browser_session_writing_without_a_csrf_token_is_403(make_user, merchant, expect_api_error):
    device = DeviceFactory(merchant=merchant, alias="Lobby")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user(Role.OPS, [merchant]))

    error = expect_api_error(
        client.patch(f"/api/v1/devices/{device.pk}", {"alias": "Hall"}, format="json"), 403, "FORBIDDEN"
    )
    assert "CSRF" in error["message"]
    device.refresh_from_db()
    assert device.alias == "Lobby"


# --- 404 ------------------------------------------------------------------------------------------


def test_an_unknown_device_id_is_404(staff_client, merchant, expect_api_error):
    client = staff_client(Role.VIEWER, [merchant])

    expect_api_error(client.get("/api/v1/devices/999999"), 404, "NOT_FOUND")


def test_an_unknown_api_url_is_404_in_the_envelope(api, expect_api_error):
    expect_api_error(api.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")


def test_an_unknown_api_url_is_404_in_the_envelope_for_a_post_too(api, expect_api_error):
    expect_api_error(api.post("/api/v1/no/such/thing", {}, format="json"), 404, "NOT_FOUND")


def test_a_404_outside_the_api_is_not_json(client):
    reply = client.get("/no-such-page")

    assert reply.status_code == 404
    assert not reply["Content-Type"].startswith("application/json")


# --- 405 ------------------------------------------------------------------------------------------


def test_an_unsupported_method_on_registration_is_405(api, expect_api_error):
    expect_api_error(api.get("/api/v1/devices/register"), 405, "METHOD_NOT_ALLOWED")


def test_an_unsupported_method_on_a_machine_endpoint_is_405(machine, expect_api_error):
    expect_api_error(machine.get(f"/api/v1/devices/{machine.device.pk}/status"), 405, "METHOD_NOT_ALLOWED")


def test_deleting_a_merchant_is_405_and_it_stays(staff_client, merchant, expect_api_error):
    client = staff_client(Role.ADMIN, [merchant])

    expect_api_error(client.delete(f"/api/v1/merchants/{merchant.pk}"), 405, "METHOD_NOT_ALLOWED")
    assert Merchant.objects.filter(pk=merchant.pk).exists()


def test_putting_a_device_is_405(staff_client, merchant, expect_api_error):
    device = DeviceFactory(merchant=merchant)
    client = staff_client(Role.OPS, [merchant])

    expect_api_error(
        client.put(f"/api/v1/devices/{device.pk}", {"alias": "x"}, format="json"), 405, "METHOD_NOT_ALLOWED"
    )


# --- 409 ------------------------------------------------------------------------------------------


def test_a_serial_of_another_merchant_is_409(api, registered, other_merchant, expect_api_error):
    reply = register(api, other_merchant, serial=registered.device.serial)

    error = expect_api_error(reply, 409, "CONFLICT")
    assert registered.device.serial in error["message"]
    assert Device.objects.get().merchant_id == registered.device.merchant_id


# --- 413 ------------------------------------------------------------------------------------------


def test_a_registration_over_the_upload_limit_is_413_and_creates_nothing(
    api, merchant, settings, expect_api_error
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    reply = register(api, merchant, alias="x" * 100, padding="y" * 4096)

    expect_api_error(reply, 413, "PAYLOAD_TOO_LARGE")
    assert not Device.objects.exists()


def test_a_heartbeat_over_the_upload_limit_is_413_and_records_nothing(machine, settings, expect_api_error):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    reply = heartbeat(machine, machine.device.pk, state="brewing", padding="y" * 4096)

    expect_api_error(reply, 413, "PAYLOAD_TOO_LARGE")
    machine.device.refresh_from_db()
    assert machine.device.state == "unknown"
    assert machine.device.last_seen_at is None


def test_a_staff_write_over_the_upload_limit_is_413(staff_client, merchant, settings, expect_api_error):
    device = DeviceFactory(merchant=merchant, alias="Lobby")
    client = staff_client(Role.OPS, [merchant])
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    reply = client.patch(
        f"/api/v1/devices/{device.pk}", {"alias": "Hall", "padding": "y" * 4096}, format="json"
    )

    expect_api_error(reply, 413, "PAYLOAD_TOO_LARGE")
    device.refresh_from_db()
    assert device.alias == "Lobby"


def test_a_body_under_the_upload_limit_is_accepted(machine, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    assert heartbeat(machine, machine.device.pk, padding="y" * 512).status_code == 200


# --- 429 ------------------------------------------------------------------------------------------


def test_a_machine_over_its_rate_is_429_with_retry_after(machine, throttle_rates, expect_api_error):
    throttle_rates(device="2/min")
    assert [heartbeat(machine, machine.device.pk).status_code for _ in range(2)] == [200, 200]

    reply = heartbeat(machine, machine.device.pk)

    error = expect_api_error(reply, 429, "THROTTLED")
    assert 0 < int(reply["Retry-After"]) <= 60
    assert error["details"]["retry_after_s"] == int(reply["Retry-After"])


def test_one_machine_over_its_rate_does_not_throttle_another(
    machine, machine_client, merchant, throttle_rates
):
    throttle_rates(device="2/min")
    other = machine_client(DeviceFactory(merchant=merchant, is_online=False))
    for _ in range(3):
        heartbeat(machine, machine.device.pk)

    assert heartbeat(other, other.device.pk).status_code == 200


def test_registration_over_its_rate_is_429_with_retry_after(api, merchant, throttle_rates, expect_api_error):
    throttle_rates(register="2/min")
    assert [register(api, merchant, serial=f"CM2K-00000{i}").status_code for i in range(2)] == [201, 201]

    reply = register(api, merchant, serial="CM2K-000009")

    expect_api_error(reply, 429, "THROTTLED")
    assert int(reply["Retry-After"]) > 0
    assert not Device.objects.filter(serial="CM2K-000009").exists()


def test_a_staff_user_over_their_rate_is_429_with_retry_after(
    staff_client, merchant, throttle_rates, expect_api_error
):
    throttle_rates(user="2/min")
    client = staff_client(Role.VIEWER, [merchant])
    client.get("/api/v1/me")
    client.get("/api/v1/me")

    reply = client.get("/api/v1/me")

    expect_api_error(reply, 429, "THROTTLED")
    assert int(reply["Retry-After"]) > 0


# --- 500 ------------------------------------------------------------------------------------------


def assert_leaks_nothing(reply):
    text = reply.content.decode()
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked in {text}"


def test_an_unexpected_error_in_a_machine_call_is_500_and_leaks_nothing(
    merchant, monkeypatch, expect_api_error
):
    def broken(**kwargs):
        raise RuntimeError("SELECT secret FROM /etc/passwd")

    monkeypatch.setattr("devices.services.register_device", broken)
    client = APIClient(raise_request_exception=False)

    reply = register(client, merchant)

    expect_api_error(reply, 500, "INTERNAL_ERROR")
    assert reply.json()["error"]["details"] == {}
    assert_leaks_nothing(reply)


def test_an_unexpected_error_in_a_staff_call_is_500_and_leaks_nothing(
    staff_client, merchant, monkeypatch, expect_api_error
):
    def broken(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM /etc/passwd")

    monkeypatch.setattr("devices.selectors.device_summary", broken)
    device = DeviceFactory(merchant=merchant)
    client = staff_client(Role.VIEWER, [merchant])
    client.raise_request_exception = False

    reply = client.get(f"/api/v1/devices/{device.pk}/summary")

    expect_api_error(reply, 500, "INTERNAL_ERROR")
    assert_leaks_nothing(reply)


def test_a_body_in_a_format_the_server_cannot_read_is_a_400_validation_error(machine, expect_api_error):
    reply = machine.post(
        f"/api/v1/devices/{machine.device.pk}/status", b"state=idle", content_type="text/plain"
    )

    expect_api_error(reply, 400, "VALIDATION_ERROR")
