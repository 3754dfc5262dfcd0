"""Each merchant has a time zone and a currency; people read times in their merchant's zone, named on
the page, and pick orders by a time range typed in that zone."""

from datetime import UTC, datetime

import pytest
from django.test import Client

from accounts.models import Merchant, Role
from operations.models import TaskJob
from tests.factories import DeviceFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

ORDERS = "/admin/orders/order/"


@pytest.fixture
def shanghai(merchant):
    merchant.time_zone = "Asia/Shanghai"  # UTC+8, no summer time
    merchant.save()
    device = DeviceFactory(merchant=merchant)
    # 23:30 on 30 November and 00:30 on 1 December in Shanghai.
    late = OrderFactory(
        device=device, machine_order_id="LATE", received_at=datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
    )
    early = OrderFactory(
        device=device, machine_order_id="EARLY", received_at=datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
    )
    return merchant, late, early


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_new_merchants_take_the_configured_zone_and_currency(settings):
    settings.MERCHANT_DEFAULT_TIME_ZONE, settings.MERCHANT_DEFAULT_CURRENCY = "Europe/Berlin", "EUR"

    merchant = Merchant.objects.create(name="Berlin Beans")

    assert (merchant.time_zone, merchant.currency) == ("Europe/Berlin", "EUR")


def test_a_merchants_orders_are_picked_by_a_time_range_in_its_zone(make_user, shanghai):
    merchant, _late, early = shanghai
    client = signed_in(make_user(Role.VIEWER, merchants=[merchant]))

    page = client.get(
        ORDERS,
        {
            "received_at_from_0": "2026-12-01",
            "received_at_from_1": "00:00",
            "received_at_to_0": "2026-12-01",
            "received_at_to_1": "12:00",
        },
    )

    assert [o.machine_order_id for o in page.context["cl"].queryset] == [early.machine_order_id]
    assert "Asia/Shanghai" in page.content.decode()  # the page names the zone its times are in


def test_the_export_of_a_time_range_holds_the_same_moments(make_user, shanghai):
    merchant, _late, _early = shanghai
    client = signed_in(make_user(Role.OPS, merchants=[merchant]))

    client.post(f"{ORDERS}export/?received_at_from_0=2026-12-01&received_at_from_1=00:00")

    assert TaskJob.objects.get().params == {"from": "2026-12-01T00:00:00+08:00"}


def test_platform_staff_read_utc_until_a_page_is_narrowed_to_one_merchant(make_user, shanghai):
    merchant, _late, _early = shanghai
    client = signed_in(make_user(Role.ADMIN, is_platform_staff=True))

    everyone = client.get(ORDERS).content.decode()
    one = client.get(ORDERS, {"merchant__id__exact": merchant.pk}).content.decode()

    assert "Asia/Shanghai" not in everyone and ">UTC<" in everyone
    assert "Asia/Shanghai" in one


@pytest.mark.parametrize(("field", "value"), [("time_zone", "Mars/Olympus"), ("currency", "yuan")])
def test_a_merchant_admin_cannot_save_a_zone_or_currency_that_does_not_exist(
    make_user, merchant, field, value
):
    client = Client()
    client.force_login(make_user(Role.ADMIN, merchants=[merchant]))

    reply = client.patch(f"/api/v1/merchants/{merchant.pk}", {field: value}, content_type="application/json")

    merchant.refresh_from_db()
    assert reply.status_code == 400 and field in reply.json()["error"]["details"]["fields"]
    assert (merchant.time_zone, merchant.currency) == ("Asia/Shanghai", "CNY")
