"""The dashboard and analytics read their sales from the hourly rollups wherever UTC hours cut the
reader's days, and those figures are the ones the orders give; in a zone a half hour off UTC they read
the orders. The dashboard ranks machines on their days of sales, and the hours or orders at the range's
edges where the reader's days are not the merchant's, with the same result."""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from operations import analytics
from operations.analytics import DIMENSIONS, sales_by
from operations.dashboard import dashboard_summary, hours_cut_days, sales_source, scope_for
from operations.machine_ranking import sales_parts
from orders.models import (
    DeviceSalesDay,
    MerchantProductSalesHour,
    MerchantSalesHour,
    Order,
    ProductSalesHour,
    SalesHour,
)
from orders.services import refund_order
from tests.factories import DeviceFactory, LocationFactory, OrderFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)  # the range around it holds New York's change of clocks


@pytest.mark.parametrize(
    ("zone", "first", "last", "cut"),
    [
        ("Asia/Shanghai", date(2026, 1, 1), date(2026, 12, 31), True),
        ("America/New_York", date(2026, 10, 28), date(2026, 11, 3), True),  # whole hours either side
        ("Asia/Kolkata", date(2026, 12, 1), date(2026, 12, 1), False),  # +5:30
        ("Asia/Kathmandu", date(2026, 12, 1), date(2026, 12, 1), False),  # +5:45
        ("Australia/Lord_Howe", date(2026, 1, 10), date(2026, 1, 16), True),  # summer: +11:00
        ("Australia/Lord_Howe", date(2026, 6, 10), date(2026, 6, 16), False),  # winter: +10:30
        ("Australia/Lord_Howe", date(2026, 3, 30), date(2026, 4, 5), False),  # into winter on 5 April
    ],
)
def test_hours_cut_the_days_only_of_zones_a_whole_number_of_hours_off_utc(zone, first, last, cut):
    assert hours_cut_days(ZoneInfo(zone), first, last) is cut


@pytest.fixture
def stream(merchant, other_merchant, make_user):
    """Random sales of two merchants (Shanghai and New York) over ten days, some refunded."""
    merchant.time_zone, other_merchant.time_zone = "Asia/Shanghai", "America/New_York"
    merchant.save()
    other_merchant.save()
    rng = random.Random(7)
    hall = LocationFactory(merchant=merchant, name="Hall")
    machines = [
        DeviceFactory(merchant=merchant, location=hall, alias="A"),
        DeviceFactory(merchant=merchant, location=None, alias="B"),
        DeviceFactory(merchant=other_merchant, alias="C"),
        DeviceFactory(merchant=merchant, location=hall, alias="Idle"),
    ]
    products = [("latte", "Latte", "15.00"), ("mocha", "Mocha", "18.00"), ("tea", "Tea", "9.50")]
    for _ in range(120):
        product, name, price = rng.choice(products)
        qty = rng.randint(1, 3)
        OrderFactory(
            device=rng.choice(machines[:3]),
            device_created_at=NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 10)),
            total=qty * Decimal(price),
            currency=rng.choice(["CNY", "CNY", "USD"]),
            payment_method=rng.choice(["wechat", "alipay", "card"]),
            payment_status=rng.choice(["paid", "paid", "paid", "unpaid", "failed"]),
            is_test=rng.random() < 0.1,
            items=[{"product_id": product, "name": name, "qty": qty, "unit_price": Decimal(price)}],
        )
    staff = make_user(Role.ADMIN, is_superuser=True)
    for order in Order.objects.filter(payment_status="paid").order_by("pk")[::7]:
        refund_order(order.pk, user=staff, reason="cold", amount=None if order.pk % 2 else Decimal("1.00"))
    return {"admin": staff, "hall": hall, "viewer": make_user(Role.VIEWER, merchants=[merchant])}


@pytest.mark.parametrize("reader", ["admin", "viewer"])
@pytest.mark.parametrize("narrowed", [False, True])
def test_the_rollups_give_every_sales_figure_the_orders_give(stream, reader, narrowed):
    location = {"location_id": stream["hall"].pk} if narrowed else {}
    scope = scope_for(stream[reader], now=NOW, first_day=date(2026, 10, 27), **location)

    from_rollups = dashboard_summary(scope, now=NOW)

    assert from_rollups["sales"] and from_rollups["top_products"] and from_rollups["top_machines"]
    assert from_rollups["silent_machines"]  # the idle machine
    assert from_rollups == dashboard_summary(scope, now=NOW, from_orders=True)


def test_the_summary_reads_the_merchants_hours_and_the_machines_days(stream):
    """A platform reader (UTC) and a Shanghai viewer: the figures above came from the new rollups."""
    for reader in ("admin", "viewer"):
        scope = scope_for(stream[reader], now=NOW, first_day=date(2026, 10, 27))
        assert dashboard_summary(scope, now=NOW)["top_machines"]
    assert len(sales_parts(scope)) == 1  # the viewer reads in the merchant's zone: its days only
    for model in (MerchantSalesHour, MerchantProductSalesHour, DeviceSalesDay):
        model.objects.all().delete()

    emptied = dashboard_summary(scope, now=NOW)

    assert emptied["sales"] == emptied["sales_per_day"] == emptied["top_products"] == []
    assert emptied["top_machines"] == []
    assert {m["name"] for m in emptied["silent_machines"]} == {"A", "B", "Idle"}


@pytest.mark.parametrize("reader", ["platform", "kolkata viewer"])
def test_in_kolkata_the_machines_ranked_on_their_days_are_those_of_the_orders(merchant, make_user, reader):
    """Kolkata's days read in UTC leave half hours at the range's edges (read from the orders); read in
    Kolkata, the range is Kolkata's days."""
    merchant.time_zone = "Asia/Kolkata"
    merchant.save()
    rng = random.Random(5)
    machines = [DeviceFactory(merchant=merchant, alias=alias) for alias in ("K1", "K2", "K3", "Idle")]
    midnight = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)  # 2 December begins in Kolkata
    for _ in range(80):
        OrderFactory(
            device=rng.choice(machines[:3]),
            device_created_at=midnight + timedelta(minutes=rng.randint(-60 * 30, 60 * 30)),
            total=Decimal(rng.choice(["9.50", "15.00", "18.00"])),
            payment_status=rng.choice(["paid", "paid", "paid", "unpaid"]),
        )
    staff = make_user(Role.ADMIN, is_superuser=True)
    for order in Order.objects.filter(payment_status="paid").order_by("pk")[::5]:
        refund_order(order.pk, user=staff, reason="cold", amount=None if order.pk % 2 else Decimal("1.00"))
    user = staff if reader == "platform" else make_user(Role.VIEWER, merchants=[merchant])
    now = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    scope = scope_for(user, now=now, first_day=date(2026, 11, 30), last_day=date(2026, 12, 2))

    from_days = dashboard_summary(scope, now=now)

    assert len(from_days["top_machines"]) == 3
    assert [m["name"] for m in from_days["silent_machines"]] == ["Idle"]
    assert from_days == dashboard_summary(scope, now=now, from_orders=True)
    if reader != "platform":
        assert len(sales_parts(scope)) == 1


def test_the_summary_runs_as_many_queries_at_any_size_and_fewer_from_rollups(stream):
    """The rollups' path reads its four sales figures in one query (the orders' path in four)."""
    scope = scope_for(stream["admin"], now=NOW)
    counts = {False: set(), True: set()}
    for more in (0, 30):
        for _ in range(more):
            OrderFactory(device_created_at=NOW - timedelta(hours=1))
        for from_orders in (False, True):
            with CaptureQueriesContext(connection) as queries:
                dashboard_summary(scope, now=NOW, from_orders=from_orders)
            counts[from_orders].add(len(queries))
    assert len(counts[False]) == len(counts[True]) == 1, counts
    assert counts[False].pop() == counts[True].pop() - 3


def test_in_kolkata_the_dashboard_reads_the_orders_and_keeps_its_days_exact(merchant, make_user):
    merchant.time_zone = "Asia/Kolkata"
    merchant.save()
    device = DeviceFactory(merchant=merchant)
    late = datetime(2026, 12, 1, 18, 20, tzinfo=UTC)  # 23:50 on 1 December in Kolkata
    OrderFactory(device=device, device_created_at=late, total=Decimal("10.00"))
    OrderFactory(device=device, device_created_at=late + timedelta(minutes=20), total=Decimal("12.00"))
    SalesHour.objects.all().delete()  # what the rollups hold does not matter here
    viewer = make_user(Role.VIEWER, merchants=[merchant])
    now = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)

    figures = dashboard_summary(scope_for(viewer, now=now), now=now)

    assert [(d["date"], d["amount"]) for d in figures["sales_per_day"]] == [
        ("2026-12-01", "10.00"),
        ("2026-12-02", "12.00"),
    ]
    assert [(h["hour"], h["amount"]) for h in figures["sales_per_hour"]] == [(0, "12.00"), (23, "10.00")]
    assert [f["amount"] for f in figures["sales_today"]] == ["12.00"]


@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_analytics_from_the_rollups_equal_analytics_from_the_orders(stream, dimension, monkeypatch):
    scope = scope_for(stream["admin"], now=NOW, first_day=date(2026, 10, 27), last_day=date(2026, 11, 3))
    from_rollups = sales_by(scope, dimension)
    assert SalesHour.objects.exists() and from_rollups

    monkeypatch.setattr(analytics, "sales_source", partial(sales_source, from_orders=True))
    assert sales_by(scope, dimension) == from_rollups

    monkeypatch.undo()
    SalesHour.objects.all().delete()
    ProductSalesHour.objects.all().delete()
    assert sales_by(scope, dimension) == []  # what it gave came from the rollups
