"""The dashboard, open in a browser in English or in Chinese, shows a sale the moment a machine reports
it, without a reload: in its figures, its charts and its tables."""

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.e2e.browser import BROWSER_TEST, ops_signed_in_with_a_machine_online

pytestmark = BROWSER_TEST


@pytest.mark.parametrize(("locale", "heading"), [("en-GB", "Sales today"), ("zh-CN", "今日销售")])
def test_a_sale_arrives_on_the_open_dashboard(live_asgi_server, locale, heading):
    from playwright.sync_api import expect

    with ops_signed_in_with_a_machine_online(
        live_asgi_server, f"ops@{locale}.example.com", "Sup3r-Secret!", f"DASH-{locale}", "/admin/", locale
    ) as (page, device_id, token):
        expect(page.get_by_text(heading, exact=True)).to_be_visible()
        today = page.locator('[data-figure-list="sales_today"]')
        expect(today).to_contain_text("0")
        top_products = page.locator('[data-live-part="top-products"]')
        expect(top_products).not_to_contain_text("Latte")
        page.wait_for_timeout(500)  # the live socket connects

        order = {
            "order_id": f"DASH-{uuid.uuid4().hex[:8]}",
            "created_at": datetime.now(UTC).isoformat(),  # sold now: today wherever the merchant is
            "currency": "CNY",
            "total": "36.00",
            "payment": {"method": "wechat", "status": "paid", "transaction_id": "wx-dash-1"},
            "items": [{"product_id": "latte", "name": "Latte", "qty": 2, "unit_price": "18.00"}],
        }
        reply = httpx.post(
            f"{live_asgi_server.url}/api/v1/devices/{device_id}/orders/create",
            json=order,
            headers={"Authorization": f"Device {token}"},
            timeout=10,
        )
        assert reply.status_code == 201, reply.text

        expect(today).to_contain_text("36.00", timeout=10_000)
        expect(top_products).to_contain_text("Latte", timeout=10_000)
        page.wait_for_function(CHART_SHOWS_36, arg="sales-per-day", timeout=10_000)
        page.wait_for_function(CHART_SHOWS_36, arg="sales-per-hour", timeout=10_000)


# True once the Chart.js chart in the named part of the page draws a bar of 36.
CHART_SHOWS_36 = """part => {
    const canvas = document.querySelector(`[data-live-part="${part}"] canvas`);
    const chart = canvas && window.Chart.getChart(canvas);
    return Boolean(chart) && chart.data.datasets.some(dataset => dataset.data.includes(36));
}"""
