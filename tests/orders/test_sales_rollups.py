"""The sales rollups (machines' and merchants' hours, machines' local days): kept in step with orders and
refunds, they always equal what a rebuild from the orders makes; concurrent ingests of one machine lose
no increment (PostgreSQL)."""

import importlib
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, connections

from accounts.models import Role
from orders.models import (
    DeviceSalesDay,
    MerchantProductSalesHour,
    MerchantSalesHour,
    Order,
    ProductSalesHour,
    SalesHour,
)
from orders.services import ItemInput, OrderInput, ingest_orders, refund_order
from orders.services.rollups import rebuild_sales_rollups
from tests.factories import DeviceFactory, LocationFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
PRODUCTS = [("latte", "Latte", "15.00"), ("mocha", "Mocha", "18.50"), ("tea", "Tea", "9.00")]


def kept_rows():
    sales = SalesHour.objects.values_list(
        "merchant_id", "location_id", "device_id", "hour", "currency", "payment_method", "orders", "amount"
    )
    products = ProductSalesHour.objects.values_list(
        "merchant_id", "location_id", "device_id", "hour", "currency", "product_id", "name", "qty", "amount"
    )
    merchant_sales = MerchantSalesHour.objects.values_list(
        "merchant_id", "hour", "currency", "payment_method", "orders", "amount"
    )
    merchant_products = MerchantProductSalesHour.objects.values_list(
        "merchant_id", "hour", "currency", "product_id", "name", "qty", "amount"
    )
    days = DeviceSalesDay.objects.values_list(
        "merchant_id", "location_id", "device_id", "day", "currency", "orders", "amount"
    )
    return set(sales), set(products), set(merchant_sales), set(merchant_products), set(days)


def random_order(rng: random.Random, n: int) -> OrderInput:
    items = tuple(
        ItemInput(product_id=p, name=name, qty=rng.randint(1, 3), unit_price=Decimal(price))
        for p, name, price in rng.sample(PRODUCTS, rng.randint(1, 2))
    )
    return OrderInput(
        order_id=f"R-{n}",
        created_at=START + timedelta(minutes=rng.randint(0, 60 * 30)),
        currency=rng.choice(["CNY", "CNY", "USD"]),
        total=sum((i.qty * i.unit_price for i in items), Decimal(0)),
        payment_method=rng.choice(["wechat", "alipay", "card"]),
        payment_status=rng.choice(["paid", "paid", "paid", "unpaid", "failed"]),
        transaction_id=f"tx-{n}",
        items=items,
        is_test=rng.random() < 0.1,
    )


def test_rollups_after_a_random_stream_of_orders_and_refunds_equal_a_rebuild(
    merchant, other_merchant, make_user
):
    rng = random.Random(13)
    # The stream holds Shanghai's midnight (16:00 UTC) and Kolkata's (18:30 UTC).
    merchant.time_zone, other_merchant.time_zone = "Asia/Shanghai", "Asia/Kolkata"
    merchant.save()
    other_merchant.save()
    hall = LocationFactory(merchant=merchant, name="Hall")
    machines = [
        DeviceFactory(merchant=merchant, location=hall),
        DeviceFactory(merchant=merchant, location=None),
        DeviceFactory(merchant=other_merchant),
    ]
    staff = make_user(role=Role.ADMIN, is_superuser=True)
    numbers = iter(range(10_000))
    for _ in range(25):
        device = rng.choice(machines)
        batch = [random_order(rng, next(numbers)) for _ in range(rng.randint(1, 6))]
        ingest_orders(device.pk, batch + batch[:1])  # a resent order counts once
        for order in Order.objects.filter(payment_status__in=["paid", "partially_refunded"]).order_by("?")[
            :2
        ]:
            left = order.total - order.refunded_total
            amount = None if rng.random() < 0.4 else (left / 3).quantize(Decimal("0.01")) or None
            refund_order(order.pk, user=staff, reason="customer", amount=amount)
    assert Order.objects.filter(payment_status="refunded").exists()
    assert Order.objects.filter(payment_status="partially_refunded").exists()
    kept = kept_rows()
    assert all(kept)
    assert {day for *_, day, _, _, _ in kept[4]} == {date(2026, 12, 1), date(2026, 12, 2)}

    rebuild_sales_rollups()

    assert kept_rows() == kept
    for model in (MerchantSalesHour, MerchantProductSalesHour, DeviceSalesDay):
        model.objects.all().delete()
    importlib.import_module("orders.migrations.0006_dashboard_rollups").fill_from_orders(apps, None)
    assert kept_rows() == kept  # the migration fills the new rollups as the service keeps them


def test_a_fully_refunded_order_leaves_no_empty_hour(merchant, make_user):
    device = DeviceFactory(merchant=merchant)
    item = ItemInput(product_id="latte", name="Latte", qty=1, unit_price=Decimal("15.00"))
    sale = OrderInput("ONE", START, "CNY", Decimal("15.00"), "wechat", "paid", "tx", (item,))
    ingest_orders(device.pk, [sale])
    assert SalesHour.objects.get().orders == 1

    refund_order(Order.objects.get().pk, user=make_user(role=Role.ADMIN, is_superuser=True), reason="spilt")

    assert kept_rows() == (set(), set(), set(), set(), set())


def test_the_rebuild_command_replaces_stale_rows_of_its_range_only(merchant):
    device = DeviceFactory(merchant=merchant)
    item = ItemInput(product_id="latte", name="Latte", qty=2, unit_price=Decimal("15.00"))
    for n, day in enumerate((START, START + timedelta(days=3))):
        ingest_orders(device.pk, [OrderInput(f"O{n}", day, "CNY", Decimal(30), "card", "paid", "", (item,))])
    kept = kept_rows()
    for model in (SalesHour, MerchantSalesHour, DeviceSalesDay):
        model.objects.update(orders=99)  # rollups gone wrong

    call_command("rebuild-sales-rollups", "--from", "2026-11-30", "--to", "2026-11-30")

    assert {r[6] for r in kept_rows()[0]} == {1, 99}  # the other day was not in the range
    call_command("rebuild-sales-rollups", "--merchant", str(merchant.pk))
    assert kept_rows() == kept


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_ingests_of_one_machine_lose_no_increment(merchant):
    if connection.vendor != "postgresql":
        pytest.skip(reason="concurrent writers need PostgreSQL")
    device = DeviceFactory(merchant=merchant)
    item = ItemInput(product_id="latte", name="Latte", qty=1, unit_price=Decimal("15.00"))
    writers, each = 8, 10
    barrier = threading.Barrier(writers)

    def write(writer):
        try:
            barrier.wait(timeout=30)
            for n in range(each):
                order = OrderInput(f"W{writer}-{n}", START, "CNY", Decimal(15), "wechat", "paid", "", (item,))
                ingest_orders(device.pk, [order])
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(write, range(writers)))

    for model in (SalesHour, MerchantSalesHour, DeviceSalesDay):
        row = model.objects.get()
        assert (row.orders, row.amount) == (writers * each, Decimal(15 * writers * each))
    assert ProductSalesHour.objects.get().qty == MerchantProductSalesHour.objects.get().qty == writers * each


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rebuild_while_orders_arrive_loses_none_of_them(merchant):
    if connection.vendor != "postgresql":
        pytest.skip(reason="concurrent writers need PostgreSQL")
    device = DeviceFactory(merchant=merchant)
    item = ItemInput(product_id="latte", name="Latte", qty=1, unit_price=Decimal("15.00"))
    done = threading.Event()

    def sell():
        try:
            for n in range(60):
                order = OrderInput(f"S-{n}", START, "CNY", Decimal(15), "wechat", "paid", "", (item,))
                ingest_orders(device.pk, [order])
        finally:
            done.set()
            connections.close_all()

    def rebuild():
        try:
            while not done.is_set():
                rebuild_sales_rollups(first_day=START.date(), last_day=START.date())
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda job: job(), (sell, rebuild)))

    for model in (SalesHour, MerchantSalesHour, DeviceSalesDay):
        row = model.objects.get()
        assert (row.orders, row.amount) == (60, Decimal(900))
    assert ProductSalesHour.objects.get().qty == MerchantProductSalesHour.objects.get().qty == 60
