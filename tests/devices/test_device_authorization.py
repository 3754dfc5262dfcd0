"""Every door a machine knocks at (HTTP, the quiet heartbeat lane, the WebSocket) reads
`Authorization: Device <token>` the same way: the scheme in any case, exactly one token."""

import pytest
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from coffeeshop.asgi import application
from coffeeshop.protocol.auth import MalformedAuthorization, device_token_of

HEARTBEAT = {"state": "idle", "temperature_c": 92.0}


@pytest.mark.parametrize(
    ("header", "token"),
    [("Device abc", "abc"), ("device abc", "abc"), ("DEVICE  abc ", "abc"), ("", None), ("Bearer abc", None)],
)
def test_the_header_yields_the_token_or_none(header, token):
    assert device_token_of(header) == token


@pytest.mark.parametrize("header", ["Device", "Device a b"])
def test_device_without_exactly_one_token_is_malformed(header):
    with pytest.raises(MalformedAuthorization):
        device_token_of(header)


def heartbeat(device, header):
    return APIClient().post(
        f"/api/v1/devices/{device.pk}/status", HEARTBEAT, format="json", HTTP_AUTHORIZATION=header
    )


@pytest.mark.django_db
def test_http_takes_the_scheme_in_any_case(registered):
    reply = heartbeat(registered.device, f"device {registered.token}")
    assert reply.status_code == 200, reply.content
    assert reply.json()["ok"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Device", "Device one two"])
def test_http_refuses_a_malformed_header_in_the_envelope_and_records_nothing(registered, header):
    reply = heartbeat(registered.device, header)
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "UNAUTHORIZED"
    registered.device.refresh_from_db()
    assert registered.device.last_seen_at is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("scheme", "connects"), [("device", True), ("Device", True), ("Device x", False)])
async def test_the_websocket_reads_the_header_the_same_way(registered, scheme, connects):
    value = f"{scheme} {registered.token}"
    socket = WebsocketCommunicator(
        application, f"/ws/devices/{registered.device.pk}/", headers=[(b"authorization", value.encode())]
    )
    connected, code = await socket.connect()
    assert connected is connects
    if connects:
        await socket.disconnect()
    else:
        assert code == 4401
