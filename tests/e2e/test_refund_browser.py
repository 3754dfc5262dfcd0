"""An Ops person refunds part of an order in the admin, in a real browser, and sees the outcome."""

import re
from decimal import Decimal

from accounts.models import Role
from orders.models import Order, PaymentStatus, Refund
from tests.e2e.browser import BROWSER_TEST, launch_chromium
from tests.factories import DeviceFactory, LocationFactory, MerchantFactory, OrderFactory, UserFactory

pytestmark = BROWSER_TEST


def test_ops_refund_part_of_an_order_from_its_admin_page(live_asgi_server):
    from playwright.sync_api import expect, sync_playwright

    merchant = MerchantFactory(name="Refund Coffee")
    ops = UserFactory(
        email="ops@refund.example.com", role=Role.OPS, merchants=[merchant], password="Sup3r-Secret!"
    )
    device = DeviceFactory(merchant=merchant, location=LocationFactory(merchant=merchant), alias="Lobby A")
    order = OrderFactory(device=device, machine_order_id="LOBBY-0042", total=Decimal("18.00"))

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            order_url = f"/admin/orders/order/{order.pk}/change/"
            page.goto(f"{live_asgi_server.url}/admin/login/?next={order_url}")
            page.get_by_label(re.compile("e-?mail", re.I)).fill("ops@refund.example.com")
            page.get_by_label(re.compile("password", re.I)).fill("Sup3r-Secret!")
            page.get_by_role("button", name=re.compile("log in|sign in", re.I)).click()
            page.wait_for_url(re.compile(re.escape(order_url)))
            expect(page.get_by_text("LOBBY-0042").first).to_be_visible()

            page.get_by_role("link", name=re.compile(r"\bRefund\s*$")).click()
            dialog = page.locator("#dialog")
            expect(dialog.get_by_text("Left to refund")).to_be_visible()
            dialog.get_by_label("Amount").fill("5.00")
            dialog.get_by_label("Reason").fill("Drink came out cold")
            dialog.get_by_role("button", name="Refund").click()

            page.wait_for_url(re.compile(re.escape(order_url) + "$"))
            expect(page.get_by_text("Refunded 5.00 CNY of order LOBBY-0042.")).to_be_visible()
            expect(page.get_by_text("Partially refunded").first).to_be_visible()
            refunds = page.locator(".inline-group, [id^='refunds']").filter(has_text="Drink came out cold")
            expect(refunds.first).to_be_visible()
            expect(refunds.first).to_contain_text("5.00")
        finally:
            browser.close()

    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.reason, refund.created_by_id) == (
        Decimal("5.00"),
        "Drink came out cold",
        ops.pk,
    )
    order = Order.objects.get(pk=order.pk)
    assert (order.payment_status, order.refunded_total) == (PaymentStatus.PARTIALLY_REFUNDED, Decimal("5.00"))
