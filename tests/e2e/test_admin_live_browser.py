"""A person in the admin watches a machine go offline and come back, without reloading the page."""

import re
import threading
from datetime import timedelta

import httpx
from django.db import connections
from django.utils import timezone

from accounts.models import Role
from devices.models import Device
from devices.services import flush_heartbeats, mark_silent_devices_offline
from tests.e2e.browser import BROWSER_TEST, launch_chromium
from tests.factories import MerchantFactory, UserFactory

pytestmark = BROWSER_TEST


def in_other_thread(fn):
    """Playwright's sync API owns this thread's event loop; Channels' async_to_sync needs another thread."""
    result = {}

    def run():
        try:
            result["value"] = fn()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result.get("value")


def heartbeat(server, device_id: str, token: str) -> None:
    reply = httpx.post(
        f"{server.url}/api/v1/devices/{device_id}/status",
        json={"state": "idle", "temperature_c": 92.1},
        headers={"Authorization": f"Device {token}"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


def test_ops_user_sees_a_machine_go_offline_and_come_back_live(live_asgi_server, materials):
    from playwright.sync_api import expect, sync_playwright

    merchant = MerchantFactory(name="Live Coffee")
    UserFactory(email="ops@live.example.com", role=Role.OPS, merchants=[merchant], password="Sup3r-Secret!")
    registration = httpx.post(
        f"{live_asgi_server.url}/api/v1/devices/register",
        json={
            "serial": "LIVE-0001",
            "model": "CM-2000",
            "firmware": "1.4.2",
            "provisioning_secret": merchant.provisioning_secret,
            "alias": "Lobby A",
        },
        timeout=10,
    ).json()["data"]
    device_id, token = registration["device_id"], registration["token"]
    heartbeat(live_asgi_server, device_id, token)

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(f"{live_asgi_server.url}/admin/login/?next=/admin/devices/device/")
            page.get_by_label(re.compile("e-?mail", re.I)).fill("ops@live.example.com")
            page.get_by_label(re.compile("password", re.I)).fill("Sup3r-Secret!")
            page.get_by_role("button", name=re.compile("log in|sign in", re.I)).click()
            page.wait_for_url(re.compile(r"/admin/devices/device/"))

            badge = page.locator(f'[data-device-id="{device_id}"][data-live="online"]').first
            expect(badge).to_have_text(re.compile(r"^\s*Online\s*$"))
            page.evaluate("window.__notReloaded = true")

            def silence_machine():
                flush_heartbeats()  # with Redis the heartbeat was written behind; time passes after it lands
                Device.objects.filter(pk=device_id).update(
                    offline_timeout_s=60, last_seen_at=timezone.now() - timedelta(minutes=5)
                )
                return mark_silent_devices_offline()

            assert in_other_thread(silence_machine) == [int(device_id)]
            expect(badge).to_have_text(re.compile(r"^\s*Offline\s*$"), timeout=15_000)

            heartbeat(live_asgi_server, device_id, token)
            expect(badge).to_have_text(re.compile(r"^\s*Online\s*$"), timeout=15_000)
            assert page.evaluate("window.__notReloaded === true"), (
                "the page reloaded instead of updating live"
            )
        finally:
            browser.close()
