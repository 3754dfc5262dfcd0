"""Simulated machines selling against the real server: offline spells, backlogs and lost replies, and the
books still hold every sale exactly once."""

from decimal import Decimal

import pytest
from django.db.models import Count, Sum

from orders.models import Order, OrderItem
from simulator import FLAT_SALES_CURVE, run_fleet
from tests.e2e.conftest import in_thread
from tests.factories import merchant_with_catalogue

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _books(merchant):
    orders = list(
        Order.objects.filter(merchant=merchant).values_list("device__serial", "machine_order_id", "total")
    )
    lines = list(
        OrderItem.objects.filter(order__merchant=merchant).values_list(
            "order__machine_order_id", "qty", "unit_price"
        )
    )
    methods = dict(
        Order.objects.filter(merchant=merchant)
        .values_list("payment_method")
        .annotate(n=Count("id"))
        .values_list("payment_method", "n")
    )
    total = Order.objects.filter(merchant=merchant).aggregate(total=Sum("total"))["total"]
    return orders, lines, methods, total


async def test_every_sale_reaches_the_books_exactly_once_through_offline_spells_and_lost_replies(
    live_asgi_server,
):
    merchant = await in_thread(merchant_with_catalogue, name="Sales E2E")

    stats = await run_fleet(
        live_asgi_server.url,
        merchant.provisioning_secret,
        devices=4,
        duration_s=20,  # long enough for lost replies to happen even on a loaded machine
        heartbeat_interval_s=1,
        offline_probability=0.25,
        offline_intervals=(1.0, 3.0),
        serial_prefix="SALE",
        seed=11,
        sales_per_hour=3_600,
        sales_curve=FLAT_SALES_CURVE,
        duplicate_probability=0.2,
    )
    orders, lines, methods, db_total = await in_thread(_books, merchant)

    assert stats.registered == 4 and stats.machines_crashed == 0
    assert stats.orders_conflict == 0, "a correct machine never sends other content under a used order id"
    assert stats.orders_rejected == 0
    assert stats.orders_duplicate > 0, "lost replies were re-sent and the server said duplicate"
    assert stats.backlogs_uploaded >= 1 and stats.orders_buffered_max >= 1
    delivered = {(record.serial, record.order_id) for record in stats.delivered}
    assert len(delivered) == len(stats.delivered), "each order booked as delivered once"
    in_books = [(serial, order_id) for serial, order_id, _ in orders]
    assert len(in_books) == len(set(in_books)), "no order twice in the books"
    assert set(in_books) == delivered, "every delivered order is in the books, and nothing else is"
    assert not {(record.serial, record.order_id) for record in stats.unsent} & set(in_books)
    assert stats.orders_sold == len(stats.delivered) + stats.orders_unsent, "every sale accounted for"
    assert db_total == stats.delivered_total
    assert sum((total for _, _, total in orders), Decimal("0")) == stats.delivered_total
    by_order: dict[str, Decimal] = {}
    for order_id, qty, unit_price in lines:
        by_order[order_id] = by_order.get(order_id, Decimal("0")) + qty * unit_price
    assert by_order == {order_id: total for _, order_id, total in orders}, "each total is its lines' sum"
    assert "wechat" in methods and "alipay" in methods
