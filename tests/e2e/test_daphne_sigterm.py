"""SIGTERM to daphne closes every open WebSocket with 1000 (normal closure), the close handshake done,
instead of dropping it (1006): a staff page and a machine can tell a restart from a network fault.
Real daphne, real websockets clients."""

import asyncio
import json

import httpx
import pytest
import websockets

from accounts.models import Role
from tests.e2e.conftest import in_thread
from tests.factories import MerchantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def closed_with(ws) -> int:
    """Reads (and drops) what the server still pushes until it closes; the close code it sent."""
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout=60)
    return ws.close_code


# Daphne's own shutdown step fails while a connection is under a second old, and works after that:
# sockets just opened and sockets open for a while both close with 1000 (coffeeshop/socket_shutdown.py).
@pytest.mark.parametrize("open_for_s", [0, 2.5], ids=["just-opened", "open-a-while"])
async def test_sigterm_closes_staff_and_machine_sockets_with_1000(
    live_asgi_server, session_cookie_for, open_for_s
):
    merchant = await in_thread(MerchantFactory, name="Socket shutdown")
    ops = await in_thread(UserFactory, role=Role.OPS, merchants=[merchant])
    cookie = await in_thread(session_cookie_for, ops)
    async with httpx.AsyncClient(base_url=live_asgi_server.url, timeout=30) as client:
        registered = await client.post(
            "/api/v1/devices/register",
            json={
                "serial": "SOCK-1",
                "model": "CM-2000",
                "provisioning_secret": merchant.provisioning_secret,
            },
        )
    assert registered.status_code == 201, registered.text
    device = registered.json()["data"]
    staff_headers = {"Origin": live_asgi_server.url, "Cookie": f"sessionid={cookie}"}
    machine_headers = {"Authorization": f"Device {device['token']}"}

    async with (
        websockets.connect(f"{live_asgi_server.ws_url}/ws/live/", additional_headers=staff_headers) as staff,
        websockets.connect(
            f"{live_asgi_server.ws_url}/ws/devices/{device['device_id']}/", additional_headers=machine_headers
        ) as machine,
    ):
        assert json.loads(await asyncio.wait_for(staff.recv(), timeout=30))["type"] == "hello"
        await asyncio.sleep(open_for_s)
        live_asgi_server.process.terminate()
        staff_code, machine_code = await asyncio.gather(closed_with(staff), closed_with(machine))

    assert (staff_code, machine_code) == (1000, 1000)
    assert await asyncio.to_thread(live_asgi_server.process.wait, 60) == 0
