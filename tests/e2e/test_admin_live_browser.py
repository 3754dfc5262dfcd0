"""A person in the admin watches a machine go offline and come back, without reloading the page."""

import re

from tests.e2e.browser import (
    BROWSER_TEST,
    assert_machine_goes_offline_and_comes_back_live,
    launch_chromium,
    log_in,
    ops_user_with_a_machine_online,
)

pytestmark = BROWSER_TEST


def test_ops_user_sees_a_machine_go_offline_and_come_back_live(live_asgi_server):
    from playwright.sync_api import sync_playwright

    device_id, token = ops_user_with_a_machine_online(
        live_asgi_server, "ops@live.example.com", "Sup3r-Secret!", "LIVE-0001"
    )

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(f"{live_asgi_server.url}/admin/login/?next=/admin/devices/device/")
            log_in(page, "ops@live.example.com", "Sup3r-Secret!")
            page.wait_for_url(re.compile(r"/admin/devices/device/"))

            assert_machine_goes_offline_and_comes_back_live(page, live_asgi_server, device_id, token)
        finally:
            browser.close()
