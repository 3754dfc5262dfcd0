"""An operator reads sales by hour of day in the admin, in a real browser: Analytics from the sidebar, the
chart drawn by unfold's own Chart.js, the table in the merchant's hours, and an XLSX export that lands
on its job's page and offers the file once a worker has written it."""

import re
from datetime import UTC, datetime
from decimal import Decimal

from accounts.models import Role
from operations.models import TaskJob
from operations.services.analytics_export import run_analytics_export
from tests.e2e.browser import BROWSER_TEST, in_other_thread, launch_chromium, log_in
from tests.factories import DeviceFactory, MerchantFactory, OrderFactory, UserFactory

pytestmark = BROWSER_TEST


def test_an_operator_reads_sales_by_hour_and_exports_them(live_asgi_server, settings, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    settings.MEDIA_ROOT = tmp_path
    merchant = MerchantFactory(name="Hourly Coffee", time_zone="Asia/Shanghai")
    UserFactory(email="ops@hourly.example.com", role=Role.OPS, merchants=[merchant], password="Sup3r-Secret!")
    device = DeviceFactory(merchant=merchant, alias="Front")
    sold_at = datetime(2026, 12, 1, 1, 15, tzinfo=UTC)  # 09:15 in Shanghai
    OrderFactory(device=device, device_created_at=sold_at, total=Decimal("23.00"))

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(f"{live_asgi_server.url}/admin/login/?next=/admin/")
            log_in(page, "ops@hourly.example.com", "Sup3r-Secret!")
            page.get_by_role("link", name=re.compile("Analytics")).first.click()
            page.get_by_role("link", name="Hour of day").click()
            page.locator("input[name=start]").fill("2026-12-01")
            page.locator("input[name=end]").fill("2026-12-01")
            page.get_by_role("button", name="Show").click()

            expect(page.locator(".cs-analytics canvas")).to_be_visible()
            expect(page.locator("table")).to_contain_text(re.compile(r"09:00\s*CNY\s*1\s*23\.00"))
            page.get_by_role("button", name=re.compile("Export XLSX")).click()
            expect(page.locator('[data-live="job"]')).to_be_visible()
            in_other_thread(lambda: run_analytics_export(TaskJob.objects.get().pk))  # as a worker would
            page.reload()
            expect(page.get_by_role("link", name=re.compile("Download XLSX"))).to_be_visible()
        finally:
            browser.close()

    job = TaskJob.objects.get()
    assert job.params["dimension"] == "hour" and job.result_rows == 1
    assert job.result_file.name.endswith(".xlsx")
