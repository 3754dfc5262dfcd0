"""What every browser test shares: Debian's chromium (never Playwright's own download), its marks, and
the steps of a person in the admin watching a real machine."""

import contextlib
import os
import re
import threading
from datetime import timedelta

import httpx
import pytest
from django.db import connections
from django.utils import timezone

CHROMIUM = "/usr/bin/chromium"
NO_CHROMIUM = "Debian's chromium is not installed (apt-get install chromium)"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# pytestmark of a browser test module: a live server needs committed data, and no chromium means skip.
BROWSER_TEST = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=NO_CHROMIUM),
]


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


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


def ops_user_with_a_machine_online(server, email: str, password: str, serial: str) -> tuple[str, str]:
    """An Ops user of a new merchant whose machine has registered and sent a heartbeat: (device_id, token)."""
    from accounts.models import Role
    from tests.factories import UserFactory, merchant_with_catalogue

    merchant = merchant_with_catalogue(name=f"{serial} Coffee")
    UserFactory(email=email, role=Role.OPS, merchants=[merchant], password=password)
    device_id, token = register_machine(server, merchant, serial, "Lobby A")
    heartbeat(server, device_id, token)
    return device_id, token


@contextlib.contextmanager
def ops_signed_in_with_a_machine_online(server, email, password, serial, path: str, locale=None):
    """A page of chromium (in `locale`'s language, if given) signed in on `path` as a new merchant's
    Ops user whose machine has registered and sent a heartbeat: yields (page, device_id, token)."""
    from playwright.sync_api import sync_playwright

    device_id, token = ops_user_with_a_machine_online(server, email, password, serial)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(locale=locale) if locale else browser.new_page()
            page.goto(f"{server.url}/admin/login/?next={path}")
            log_in(page, email, password)
            page.wait_for_url(re.compile(re.escape(path)))
            yield page, device_id, token
        finally:
            browser.close()


def register_machine(server, merchant, serial: str, alias: str) -> tuple[str, str]:
    """A machine registered over the protocol: (device_id, token)."""
    reply = httpx.post(
        f"{server.url}/api/v1/devices/register",
        json={
            "serial": serial,
            "model": "CM-2000",
            "firmware": "1.4.2",
            "provisioning_secret": merchant.provisioning_secret,
            "alias": alias,
        },
        timeout=10,
    )
    assert reply.status_code == 201, reply.text
    data = reply.json()["data"]
    return data["device_id"], data["token"]


def heartbeat(server, device_id: str, token: str) -> None:
    reply = httpx.post(
        f"{server.url}/api/v1/devices/{device_id}/status",
        json={"state": "idle", "temperature_c": 92.1},
        headers={"Authorization": f"Device {token}"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


def silence_machine(device_id: str) -> list[int]:
    """Five minutes pass without a word from the machine, and the offline sweep runs: the ids it marked."""
    from devices.models import Device
    from devices.services import flush_heartbeats, mark_silent_devices_offline

    def silence():
        flush_heartbeats()  # with Redis the heartbeat was written behind; time passes after it lands
        Device.objects.filter(pk=device_id).update(
            offline_timeout_s=60, last_seen_at=timezone.now() - timedelta(minutes=5)
        )
        return mark_silent_devices_offline()

    return in_other_thread(silence)


def online_badge(page, device_id: str):
    """A machine's live online/offline text on the open page."""
    return page.locator(f'[data-device-id="{device_id}"][data-live="online"]').first


def assert_machine_goes_offline_and_comes_back_live(page, server, device_id: str, token: str) -> None:
    """The machine falls silent and the offline sweep runs, then it heartbeats again: its badge on the
    open page follows both, without a reload."""
    from playwright.sync_api import expect

    badge = online_badge(page, device_id)
    expect(badge).to_have_text(re.compile(r"^\s*Online\s*$"))
    page.evaluate("window.__notReloaded = true")

    assert silence_machine(device_id) == [int(device_id)]
    expect(badge).to_have_text(re.compile(r"^\s*Offline\s*$"), timeout=15_000)

    heartbeat(server, device_id, token)
    expect(badge).to_have_text(re.compile(r"^\s*Online\s*$"), timeout=15_000)
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded instead of updating live"


def log_in(page, email: str, password: str) -> None:
    """Fill in and send the admin's login form, open on `page`, and wait for the page it leads to."""
    # By the fields' names, not their labels: the page may be in Chinese.
    page.locator('input[name="username"]').fill(email)
    page.locator('input[name="password"]').fill(password)
    with page.expect_navigation():
        page.locator('form [type="submit"]').first.click()
