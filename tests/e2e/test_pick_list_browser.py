"""An operator reads tomorrow's pick list in the admin, in a real browser: from the sidebar, two
locations chosen, the bins to fill under each machine and the van's totals, and the CSV downloaded."""

import re
import zoneinfo
from datetime import datetime, timedelta
from pathlib import Path

from accounts.models import Role
from inventory.services.picklist import default_visit_date, visit_time
from tests.e2e.browser import BROWSER_TEST, launch_chromium, log_in
from tests.factories import (
    DeviceBinFactory,
    DeviceFactory,
    LocationFactory,
    MaterialFactory,
    MerchantFactory,
    UserFactory,
)

pytestmark = BROWSER_TEST


def test_an_operator_reads_tomorrows_pick_list_and_downloads_it(live_asgi_server):
    from playwright.sync_api import expect, sync_playwright

    merchant = MerchantFactory(name="Pick Coffee")
    UserFactory(
        email="viewer@pick.example.com", role=Role.VIEWER, merchants=[merchant], password="Sup3r-Secret!"
    )
    MaterialFactory(
        merchant=merchant, code="BEAN-ARABICA", name="阿拉比卡咖啡豆", kind="bean", pack_size=1000
    )
    zone = zoneinfo.ZoneInfo(merchant.time_zone)  # the visit is tomorrow 08:00 where the machines are
    visit_at = datetime.combine(default_visit_date(zone=zone), visit_time(), tzinfo=zone)
    for name, serial, remaining in (("Lobby", "PICK-A", 900), ("Station", "PICK-B", 700)):
        device = DeviceFactory(
            merchant=merchant, location=LocationFactory(merchant=merchant, name=name), serial=serial
        )
        DeviceBinFactory(
            device=device,
            index=1,
            material_code="BEAN-ARABICA",
            capacity=2000 if serial == "PICK-A" else 1000,
            remaining=remaining,
            level_pct=50,
            drain_per_day=300 if serial == "PICK-A" else 200,
            reported_at=visit_at - timedelta(days=1),
        )

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(f"{live_asgi_server.url}/admin/login/?next=/admin/")
            log_in(page, "viewer@pick.example.com", "Sup3r-Secret!")
            page.get_by_role("link", name=re.compile("Pick list")).first.click()
            page.locator("select[name=locations]").select_option(label=["Lobby", "Station"])
            page.get_by_role("button", name=re.compile("Show the pick list")).click()

            machines = page.locator(".cs-pick-list-machine")
            expect(machines).to_have_count(2)
            expect(machines.first).to_contain_text("PICK-A")
            expect(page.get_by_text(re.compile(r"1,400 g"))).to_be_visible()  # 2000 - (900 - 300)
            totals = page.locator("table").last
            expect(totals).to_contain_text("阿拉比卡咖啡豆")
            expect(totals).to_contain_text(re.compile(r"2 × 1,000 g"))  # 1,400 + 500 g: two bags, not three
            with page.expect_download() as download:
                page.get_by_role("link", name=re.compile("Download CSV")).click()
            content = Path(download.value.path()).read_text(encoding="utf-8-sig")
        finally:
            browser.close()

    rows = content.splitlines()
    assert rows[0].startswith("row,location,machine_serial")
    assert [row.split(",")[:3] for row in rows[1:3]] == [
        ["bin", "Lobby", "PICK-A"],
        ["bin", "Station", "PICK-B"],
    ]
    assert rows[3].startswith("total,") and ",1900,1000,2,2000,100" in rows[3]
