"""A demo machine's week of sales: the orders the simulated machine would have made, written in bulk
and then summed into the sales rollups by the rollup rebuild (the same figures a live upload keeps,
a hundred times faster than taking them one request at a time), and a few of them refunded through
the refund service (refunds never exceed what was paid; the rollups follow).

Customers come as the live simulator's do: a Poisson process at the machine's average rate, shaped by
the daily curve on the merchant's clock (simulator.sales.sales_rate_per_hour), so the day charts run on
into today without a jump when the live fleet takes over.
"""

import random
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection

from coffeeshop.protocol.serializers import OrderSerializer
from orders.models import Order, OrderItem, PaymentStatus, Refund
from orders.services.ingest import OrderInput, item_rows, order_fields
from orders.services.refunds import refund_order
from simulator import SimulatedMachine
from simulator.sales import DAILY_SALES_CURVE, peak_sales_per_hour, sales_rate_per_hour

REFUND_SHARE = 0.015
PARTIAL_REFUND_SHARE = 0.3
REFUND_REASONS = (
    "Cup not dispensed",
    "Drink made with the wrong milk",
    "Customer charged twice",
    "Drink too cold",
)
CENT = Decimal("0.01")


def arrival_times(rng: random.Random, start: datetime, end: datetime, zone: ZoneInfo, sales_per_hour: float):
    """When customers come in [start, end): drawn at the curve's peak rate, each kept with probability
    rate(local hour) / peak (thinning), exactly as the live machines decide."""
    peak = peak_sales_per_hour(sales_per_hour, DAILY_SALES_CURVE)
    if peak <= 0:
        return []
    moments, moment = [], start
    while True:
        moment += timedelta(seconds=rng.expovariate(peak / 3600.0))
        if moment >= end:
            return moments
        if rng.random() * peak < sales_rate_per_hour(moment.astimezone(zone), sales_per_hour):
            moments.append(moment.replace(microsecond=0))


def order_input(body: dict) -> OrderInput:
    """A protocol order body as the API hands it to the ingest service (the body is the simulator's own,
    valid by construction: only its strings are parsed)."""
    attrs = {
        **body,
        "created_at": datetime.fromisoformat(body["created_at"]),
        "total": Decimal(body["total"]),
        "payment": {"transaction_id": "", **body["payment"]},
        "items": [{**item, "unit_price": Decimal(item["unit_price"])} for item in body["items"]],
    }
    return OrderSerializer.to_input(attrs)


# Every column but the key, so a column added to the models is written here too (its default, unless
# the machine's order or its machine gives it).
ORDER_FIELDS = tuple(f for f in Order._meta.concrete_fields if not f.primary_key)
ITEM_FIELDS = tuple(f for f in OrderItem._meta.concrete_fields if not f.primary_key)
ORDER_COLUMNS = tuple(f.column for f in ORDER_FIELDS)
ITEM_COLUMNS = tuple(f.column for f in ITEM_FIELDS)


def _row(fields, instance) -> tuple:
    return tuple(f.get_db_prep_save(getattr(instance, f.attname), connection) for f in fields)


def _order_row(device, order: OrderInput) -> tuple:
    """The order as ingest writes it (`order_fields`), received when made."""
    row = Order(
        merchant_id=device.merchant_id,
        location_id=device.location_id,
        device_id=device.pk,
        package_version=device.package_version,
        **order_fields(order, order.created_at),
    )
    return _row(ORDER_FIELDS, row)


def _item_rows(order_pk: int, order: OrderInput) -> list[tuple]:
    items = item_rows(None, order)
    for item in items:
        item.order_id = order_pk
    return [_row(ITEM_FIELDS, item) for item in items]


def insert_rows(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """One INSERT run over many rows, without building a model instance per row (seeding speed)."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})",
            rows,
        )


def sell_week(
    machine: SimulatedMachine,
    device,
    *,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    sales_per_hour: float,
    rng: random.Random,
) -> int:
    """Write the machine's sales of [start, end), numbered from its `next_order_number` on, without
    their rollups (the caller rebuilds them). Returns how many orders were written."""
    orders = [
        order_input(machine.make_order(moment.astimezone(machine.tz)).body)
        for moment in arrival_times(rng, start, end, zone, sales_per_hour)
    ]
    insert_rows(Order, ORDER_COLUMNS, [_order_row(device, order) for order in orders])
    ids = dict(
        Order.objects.filter(device_id=device.pk, machine_order_id__in=[o.order_id for o in orders])
        .values_list("machine_order_id", "pk")
        .iterator(chunk_size=2000)
    )
    insert_rows(OrderItem, ITEM_COLUMNS, [row for o in orders for row in _item_rows(ids[o.order_id], o)])
    return len(orders)


def refund_some(device_ids: list[int], *, user, end: datetime, rng: random.Random) -> int:
    """Refund about REFUND_SHARE of the machines' paid orders (some in part), as staff would, dated
    within hours of the sale. Returns how many refunds were made."""
    paid = list(
        Order.objects.filter(device_id__in=device_ids, payment_status=PaymentStatus.PAID)
        .order_by("pk")
        .values_list("pk", "total", "device_created_at")
    )
    chosen = rng.sample(paid, round(len(paid) * REFUND_SHARE)) if paid else []
    refunds = []
    for pk, total, sold_at in sorted(chosen):
        partial = rng.random() < PARTIAL_REFUND_SHARE and total >= 2 * CENT
        amount = (total / 2).quantize(CENT) if partial else None
        refund = refund_order(pk, user=user, reason=rng.choice(REFUND_REASONS), amount=amount)
        refund.created_at = min(sold_at + timedelta(minutes=rng.uniform(5, 240)), end)
        refunds.append(refund)
    Refund.objects.bulk_update(refunds, ["created_at"], batch_size=500)
    return len(refunds)
