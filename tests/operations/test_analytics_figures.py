"""Every analytics figure of every dimension against the hand-computed business of analytics_business:
sales in the merchant's local days, hours and weekdays, net of refunds, never mixing currencies, without
unpaid, failed or test orders; uptime from recorded hours only; merchant A never sees merchant B."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from coffeeshop.exceptions import Invalid
from devices.models import DeviceStatusHour
from operations.analytics import DIMENSIONS, sales_by, uptime_per_day
from operations.dashboard import scope_for
from tests.factories import DeviceFactory, OrderFactory
from tests.operations.analytics_business import FIRST_DAY, LAST_DAY, NOW, build_business, utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def business(merchant, other_merchant, make_user):
    viewer = make_user(Role.VIEWER, merchants=[merchant])
    return {**build_business(merchant, other_merchant), "viewer": viewer}


def scope(user, **narrowed):
    return scope_for(user, first_day=FIRST_DAY, last_day=LAST_DAY, now=NOW, **narrowed)


def figures(user, dimension, **narrowed):
    rows = sales_by(scope(user, **narrowed), dimension)
    count = "qty" if dimension == "product" else "orders"
    return [(r["label"], r["currency"], r[count], r["amount"]) for r in rows]


def test_sales_by_merchant(business):
    assert figures(business["viewer"], "merchant") == [
        ("Brew Co", "CNY", 4, "75.00"),
        ("Brew Co", "HKD", 1, "40.00"),
    ]


def test_sales_by_location(business):
    assert figures(business["viewer"], "location") == [
        ("Hall", "CNY", 3, "50.00"),
        ("Lobby", "CNY", 1, "25.00"),
        ("Lobby", "HKD", 1, "40.00"),
    ]


def test_sales_by_machine_name_it_by_alias_or_serial(business):
    rows = sales_by(scope(business["viewer"]), "machine")

    assert [(r["key"], r["label"], r["currency"], r["orders"], r["amount"]) for r in rows] == [
        (business["seller"].pk, "Seller", "CNY", 3, "50.00"),
        (business["lobby_machine"].pk, "CM2K-LOBBY", "CNY", 1, "25.00"),
        (business["lobby_machine"].pk, "CM2K-LOBBY", "HKD", 1, "40.00"),
    ]


def test_sales_by_product_count_the_quantity_sold(business):
    # A partial refund comes off its order, not off one of its items: the latte's 30.00 stays whole.
    assert figures(business["viewer"], "product") == [
        ("Latte", "CNY", 3, "48.00"),
        ("Mocha", "CNY", 1, "25.00"),
        ("Americano", "CNY", 1, "12.00"),
        ("Latte", "HKD", 2, "40.00"),
    ]


def test_sales_by_payment_method_show_the_methods_names(business):
    assert figures(business["viewer"], "payment_method") == [
        ("WeChat Pay", "CNY", 2, "38.00"),
        ("Meal card", "CNY", 1, "25.00"),  # Brew Co's name for it, not the rival's
        ("Cash", "CNY", 1, "12.00"),
        ("Cash", "HKD", 1, "40.00"),
    ]


def test_sales_by_hour_fall_on_the_merchants_local_clock(business):
    rows = sales_by(scope(business["viewer"]), "hour")

    assert [(r["key"], r["label"], r["currency"], r["orders"], r["amount"]) for r in rows] == [
        (0, "00:00", "CNY", 2, "32.00"),  # 00:30 on both days, one of them 30 November in UTC
        (9, "09:00", "CNY", 1, "25.00"),
        (10, "10:00", "HKD", 1, "40.00"),
        (23, "23:00", "CNY", 1, "18.00"),
    ]


def test_sales_by_weekday_fall_on_the_merchants_local_days(business):
    rows = sales_by(scope(business["viewer"]), "weekday")

    # 23:30 on Tuesday and 00:30 on Wednesday are both 1 December in UTC.
    assert [(r["key"], r["label"], r["currency"], r["orders"], r["amount"]) for r in rows] == [
        (2, "Tuesday", "CNY", 2, "30.00"),
        (3, "Wednesday", "CNY", 2, "45.00"),
        (3, "Wednesday", "HKD", 1, "40.00"),
    ]


def test_a_location_narrows_the_sales(business):
    assert figures(business["viewer"], "machine", location_id=business["lobby"].pk) == [
        ("CM2K-LOBBY", "CNY", 1, "25.00"),
        ("CM2K-LOBBY", "HKD", 1, "40.00"),
    ]


def test_uptime_per_machine_and_day_and_of_the_fleet(business):
    uptime = uptime_per_day(scope(business["viewer"]))

    assert [(r["date"], r["label"], r["uptime_pct"]) for r in uptime["machines"]] == [
        ("2026-12-01", "CM2K-LOBBY", 100.0),
        ("2026-12-01", "Seller", 25.0),  # 1800 s online of 7200 s known
        ("2026-12-02", "Seller", 100.0),  # the lobby machine's hour of unknown state is no point
    ]
    assert uptime["fleet"] == [
        {"date": "2026-12-01", "uptime_pct": 50.0},
        {"date": "2026-12-02", "uptime_pct": 100.0},
    ]


def test_merchant_b_sees_only_its_own_rows_and_never_reaches_a(business, make_user, other_merchant, merchant):
    rival = make_user(Role.VIEWER, merchants=[other_merchant])

    assert figures(rival, "merchant") == [("Other Beans", "CNY", 1, "77.00")]
    assert figures(rival, "machine") == [("Rival", "CNY", 1, "77.00")]
    assert figures(rival, "payment_method") == [("Rival card", "CNY", 1, "77.00")]
    assert [r["label"] for r in uptime_per_day(scope(rival))["machines"]] == ["Rival"]
    for narrowed in ({"merchant_id": merchant.pk}, {"location_id": business["hall"].pk}):
        with pytest.raises(Invalid):
            scope(rival, **narrowed)


def test_platform_staff_see_every_merchant_one_row_per_currency(business, make_user):
    staff = make_user(Role.ADMIN, is_platform_staff=True)
    rows = figures(staff, "merchant")

    assert ("Other Beans", "CNY", 1, "77.00") in rows and ("Brew Co", "HKD", 1, "40.00") in rows


@pytest.mark.parametrize("dimension", [*DIMENSIONS, "uptime"])
def test_each_report_runs_the_same_queries_for_ten_times_the_machines(business, merchant, dimension):
    def queries() -> int:
        of_viewer = scope(business["viewer"])
        with CaptureQueriesContext(connection) as captured:
            if dimension == "uptime":
                rows = uptime_per_day(of_viewer)["machines"]
            else:
                rows = sales_by(of_viewer, dimension)
        assert rows
        return len(captured)

    few = queries()
    for n in range(10):
        device = DeviceFactory(merchant=merchant, alias=f"More {n}")
        OrderFactory(device=device, device_created_at=utc(12, 2, 3), payment_method=f"method{n}")
        DeviceStatusHour.objects.create(device=device, hour=utc(12, 2, 3), online_s=60, known_s=60, samples=1)
    assert queries() == few


def test_a_sale_of_a_machine_without_location_is_named_so(business, merchant):
    OrderFactory(device=DeviceFactory(merchant=merchant, location=None), device_created_at=utc(12, 2, 3),
                 total="5.00")  # fmt: skip

    assert figures(business["viewer"], "location")[-2:] == [
        ("No location", "CNY", 1, "5.00"),
        ("Lobby", "HKD", 1, "40.00"),
    ]
