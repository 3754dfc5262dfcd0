"""The whole stack: simulated machines over HTTP, the server, and a staff WebSocket hearing about them."""

import asyncio
import json

import pytest
import websockets

from accounts.models import Role
from devices.models import Device
from simulator import run_fleet
from tests.e2e.conftest import in_thread
from tests.factories import MerchantFactory, UserFactory, merchant_with_catalogue

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def _collect(ws, wanted_serials: set[str], timeout_s: float) -> dict[str, dict]:
    """Read pushes until every wanted serial was seen online (or the timeout passes)."""
    seen: dict[str, dict] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while wanted_serials - seen.keys() and loop.time() < deadline:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=deadline - loop.time()))
        except TimeoutError:
            break
        if message["type"] == "device.status" and message["data"].get("is_online"):
            seen[message["data"]["serial"]] = message["data"]
    return seen


async def test_simulated_machines_register_heartbeat_and_reach_the_staff_socket(
    live_asgi_server, session_cookie_for
):
    merchant = await in_thread(merchant_with_catalogue, name="E2E Coffee")
    stranger = await in_thread(MerchantFactory, name="Not Mine")
    ops = await in_thread(UserFactory, role=Role.OPS, merchants=[merchant])
    outsider = await in_thread(UserFactory, role=Role.OPS, merchants=[stranger])
    cookie = await in_thread(session_cookie_for, ops)
    outsider_cookie = await in_thread(session_cookie_for, outsider)
    headers = {"Origin": live_asgi_server.url, "Cookie": f"sessionid={cookie}"}
    outsider_headers = {"Origin": live_asgi_server.url, "Cookie": f"sessionid={outsider_cookie}"}
    url = f"{live_asgi_server.ws_url}/ws/live/"

    async with (
        websockets.connect(url, additional_headers=headers) as ws,
        websockets.connect(url, additional_headers=outsider_headers) as outsider_ws,
    ):
        hello = json.loads(await ws.recv())
        assert hello == {"type": "hello", "merchant_ids": [merchant.pk]}
        await outsider_ws.recv()  # its hello

        fleet = asyncio.create_task(
            run_fleet(
                live_asgi_server.url,
                merchant.provisioning_secret,
                devices=3,
                duration_s=8,
                heartbeat_interval_s=1,
                offline_probability=0,
                serial_prefix="E2E",
                seed=7,
            )
        )
        seen = await _collect(ws, {"E2E-000001", "E2E-000002", "E2E-000003"}, timeout_s=15)
        stats = await fleet
        leaked = await _collect(outsider_ws, {"E2E-000001"}, timeout_s=1.5)

    assert set(seen) == {"E2E-000001", "E2E-000002", "E2E-000003"}
    assert all(update["merchant_id"] == merchant.pk for update in seen.values())
    assert stats.registered == 3 and stats.heartbeats_failed == 0 and stats.heartbeats_sent >= 6
    assert leaked == {}, "a machine of another merchant reached this user's socket"
    devices = await in_thread(
        lambda: list(Device.objects.filter(merchant=merchant).values_list("serial", "is_online", "state"))
    )
    assert sorted(d[0] for d in devices) == ["E2E-000001", "E2E-000002", "E2E-000003"]
    assert all(is_online for _, is_online, _ in devices)


async def test_a_staff_socket_left_idle_still_hears_the_next_change(live_asgi_server, session_cookie_for):
    """An idle socket once dropped every few seconds (a Redis read time-out); pushes must still arrive."""
    import httpx

    merchant = await in_thread(merchant_with_catalogue, name="Idle Coffee")
    viewer = await in_thread(UserFactory, role=Role.VIEWER, merchants=[merchant])
    cookie = await in_thread(session_cookie_for, viewer)
    headers = {"Origin": live_asgi_server.url, "Cookie": f"sessionid={cookie}"}
    async with websockets.connect(f"{live_asgi_server.ws_url}/ws/live/", additional_headers=headers) as ws:
        await ws.recv()  # hello
        await asyncio.sleep(12)
        async with httpx.AsyncClient(base_url=live_asgi_server.url) as client:
            registered = (
                await client.post(
                    "/api/v1/devices/register",
                    json={
                        "serial": "IDLE-1",
                        "model": "CM-2000",
                        "provisioning_secret": merchant.provisioning_secret,
                    },
                )
            ).json()
            token, device_id = registered["data"]["token"], registered["data"]["device_id"]
            await client.post(
                f"/api/v1/devices/{device_id}/status",
                json={"state": "idle"},
                headers={"Authorization": f"Device {token}"},
            )
        seen = await _collect(ws, {"IDLE-1"}, timeout_s=10)
    assert "IDLE-1" in seen
