"""A manager imports Excel's CSV of materials in the admin, in a real browser: a file with a bad row is
refused with the row and column named and nothing written; the fixed file's preview marks each row,
nothing is written until they confirm, and then the catalogue holds the rows, Chinese names and all."""

import re

from accounts.models import Role
from inventory.models import Material
from tests.e2e.browser import BROWSER_TEST, in_other_thread, launch_chromium
from tests.factories import MaterialFactory, MerchantFactory, UserFactory

pytestmark = BROWSER_TEST

EXCEL_CSV = (
    "\ufeffcode,name,kind,unit,low_threshold_pct,supplier\r\n"
    "BEAN-ARABICA,阿拉比卡咖啡豆,bean,g,20,云南咖啡\r\n"
    "OAT-MILK,燕麦奶,milk,ml,25,OATLY\r\n"
).encode()
# The same file as first saved: the oat milk's unit is one the catalogue does not know.
WITH_A_BAD_ROW = EXCEL_CSV.replace("OAT-MILK,燕麦奶,milk,ml".encode(), "OAT-MILK,燕麦奶,milk,litre".encode())


def test_a_manager_uploads_a_csv_sees_the_preview_and_confirms(live_asgi_server):
    from playwright.sync_api import expect, sync_playwright

    merchant = MerchantFactory(name="Import Coffee")
    UserFactory(email="ops@import.example.com", role=Role.OPS, merchants=[merchant], password="Sup3r-Secret!")
    MaterialFactory(merchant=merchant, code="BEAN-ARABICA", name="Arabica", kind="bean")
    import_url = "/admin/inventory/material/import/"

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(f"{live_asgi_server.url}/admin/login/?next={import_url}")
            page.get_by_label(re.compile("e-?mail", re.I)).fill("ops@import.example.com")
            page.get_by_label(re.compile("password", re.I)).fill("Sup3r-Secret!")
            page.get_by_role("button", name=re.compile("log in|sign in", re.I)).click()
            page.wait_for_url(re.compile(re.escape(import_url)))

            def upload(content):
                page.locator("input[name=import_file]").set_input_files(
                    {"name": "materials.csv", "mimeType": "text/csv", "buffer": content}
                )
                page.locator("select[name=format]").select_option(label="csv")
                page.get_by_role("button", name=re.compile("submit", re.I)).click()

            upload(WITH_A_BAD_ROW)
            errors = page.locator("table").filter(has_text="litre")
            expect(errors.first).to_be_visible()
            expect(page.get_by_text(re.compile("not a valid choice", re.I)).first).to_be_visible()
            expect(page.get_by_role("button", name=re.compile("confirm import", re.I))).to_have_count(0)
            assert in_other_thread(lambda: Material.objects.filter(code="OAT-MILK").exists()) is False

            page.goto(f"{live_asgi_server.url}{import_url}")
            upload(EXCEL_CSV)

            preview = page.locator("table").filter(has_text="燕麦奶")
            expect(preview.first).to_be_visible()
            expect(preview.first).to_contain_text(re.compile("new", re.I))
            expect(preview.first).to_contain_text(re.compile("update", re.I))
            written_early = in_other_thread(lambda: Material.objects.filter(code="OAT-MILK").exists())
            assert written_early is False, "nothing is written before the confirmation"

            page.get_by_role("button", name=re.compile("confirm import", re.I)).click()
            expect(page.get_by_text(re.compile(r"Import finished.*1 new.*1 updated", re.I))).to_be_visible()
            expect(page.get_by_text("燕麦奶").first).to_be_visible()
        finally:
            browser.close()

    materials = {m.code: m for m in Material.objects.filter(merchant=merchant)}
    assert (materials["OAT-MILK"].name, materials["OAT-MILK"].unit) == ("燕麦奶", "ml")
    assert (materials["BEAN-ARABICA"].name, materials["BEAN-ARABICA"].low_threshold_pct) == (
        "阿拉比卡咖啡豆",
        20,
    )
