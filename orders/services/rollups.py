"""Hourly sales rollups (orders.models.SalesHour, ProductSalesHour), kept in the transaction that
changes the orders.

Each write adds what changed to the hours it touches with one `INSERT ... ON CONFLICT DO UPDATE SET
x = x + excluded.x` per table and batch of orders (PostgreSQL and SQLite alike): concurrent writers
never lose an increment, since the database adds under the row's lock, and rows are written in one
order so two of them cannot deadlock. A refund that takes an order out of the sales removes the rows
it leaves empty, so the kept rows are exactly those a rebuild from the orders makes.

`rebuild_sales_rollups` recomputes a range from the orders, a UTC day per transaction, holding the
rollup tables' write lock on PostgreSQL meanwhile (an order arriving then waits for the day, rather
than being added to a row the rebuild is replacing).
"""

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, DecimalField, F, Max, Min, Sum
from django.db.models.functions import Trunc

from orders.models import MONEY, Order, OrderItem, ProductSalesHour, SalesHour
from orders.selectors import SOLD_STATUSES, net_amount

SALES_KEY = ("merchant_id", "location_id", "device_id", "hour", "currency", "payment_method")
SALES_SUMS = ("orders", "amount")
PRODUCT_KEY = ("merchant_id", "location_id", "device_id", "hour", "currency", "product_id", "name")
PRODUCT_SUMS = ("qty", "amount")


def utc_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def is_sale(order: Order) -> bool:
    return not order.is_test and order.payment_status in SOLD_STATUSES


def _order_key(order: Order) -> tuple:
    hour = utc_hour(order.device_created_at)
    return (order.merchant_id, order.location_id, order.device_id, hour, order.currency)


def add_sales(orders: list[Order], items: list[OrderItem]) -> None:
    """Add freshly inserted orders and their items (each knowing its order) to the rollups."""
    sales, products = defaultdict(lambda: [0, Decimal(0)]), defaultdict(lambda: [0, Decimal(0)])
    for order in orders:
        if is_sale(order):
            row = sales[(*_order_key(order), order.payment_method)]
            row[0] += 1
            row[1] += order.total - order.refunded_total
    for item in items:
        if is_sale(item.order):
            row = products[(*_order_key(item.order), item.product_id, item.name)]
            row[0] += item.qty
            row[1] += item.qty * item.unit_price
    _upsert(SalesHour, SALES_KEY, SALES_SUMS, sales)
    _upsert(ProductSalesHour, PRODUCT_KEY, PRODUCT_SUMS, products)


def record_refund(order: Order, *, was_sale: bool, refunded: Decimal) -> None:
    """After `order` (locked by the caller) was refunded `refunded` successfully: its amount leaves the
    sales, and so does the order itself, with its products, when it is no longer a sale."""
    if not was_sale or not refunded:
        return
    key = (*_order_key(order), order.payment_method)
    if is_sale(order):
        _upsert(SalesHour, SALES_KEY, SALES_SUMS, {key: (0, -refunded)})
        return
    _upsert(SalesHour, SALES_KEY, SALES_SUMS, {key: (-1, -refunded)})
    products = defaultdict(lambda: [0, Decimal(0)])
    for item in order.items.all():
        row = products[(*_order_key(order), item.product_id, item.name)]
        row[0] -= item.qty
        row[1] -= item.qty * item.unit_price
    _upsert(ProductSalesHour, PRODUCT_KEY, PRODUCT_SUMS, products)
    hour = {"merchant_id": order.merchant_id, "location_id": order.location_id, "device_id": order.device_id}
    hour |= {"hour": utc_hour(order.device_created_at), "currency": order.currency}
    SalesHour.objects.filter(**hour, payment_method=order.payment_method, orders=0).delete()
    ProductSalesHour.objects.filter(**hour, product_id__in=[k[5] for k in products], qty=0).delete()


def _upsert(model, key: tuple, sums: tuple, deltas: dict) -> None:
    if not deltas:
        return
    quote, ops = connection.ops.quote_name, connection.ops
    table = quote(model._meta.db_table)
    target = ", ".join("COALESCE(location_id, 0)" if c == "location_id" else quote(c) for c in key)
    row = "(" + ", ".join(["%s"] * (len(key) + len(sums))) + ")"
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in sums)
    params = []
    for row_key, values in sorted(deltas.items(), key=lambda kv: str(kv[0])):  # one lock order for all
        merchant, location, device, hour, *rest = row_key
        params += [merchant, location, device, ops.adapt_datetimefield_value(hour), *rest, values[0]]
        params.append(ops.adapt_decimalfield_value(values[1], **MONEY))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(quote(c) for c in key + sums)}) "
            f"VALUES {', '.join([row] * len(deltas))} ON CONFLICT ({target}) DO UPDATE SET {updates}",
            params,
        )


def _sold_orders(merchant_id: int | None):
    orders = Order.objects.filter(is_test=False, payment_status__in=SOLD_STATUSES)
    return orders if merchant_id is None else orders.filter(merchant_id=merchant_id)


def _days_to_rebuild(merchant_id, first_day: date | None, last_day: date | None) -> tuple[date, date] | None:
    """The range asked for; by default every day with sales or with rollups (stale ones go too)."""
    if first_day is not None and last_day is not None:
        return first_day, last_day
    kept = SalesHour.objects.all()
    kept = kept if merchant_id is None else kept.filter(merchant_id=merchant_id)
    bounds = [
        _sold_orders(merchant_id).aggregate(first=Min("device_created_at"), last=Max("device_created_at")),
        kept.aggregate(first=Min("hour"), last=Max("hour")),
    ]
    firsts = [b["first"] for b in bounds if b["first"]]
    lasts = [b["last"] for b in bounds if b["last"]]
    if not firsts:
        return None
    return first_day or min(firsts).astimezone(UTC).date(), last_day or max(lasts).astimezone(UTC).date()


def rebuild_sales_rollups(
    *, merchant_id: int | None = None, first_day: date | None = None, last_day: date | None = None
) -> int:
    """Replace the rollups of the UTC days `first_day`..`last_day` (of one merchant, or all) by what
    the orders add up to; idempotent. Returns the number of days rebuilt."""
    days = _days_to_rebuild(merchant_id, first_day, last_day)
    if days is None:
        return 0
    day, count = days[0], 0
    while day <= days[1]:
        start = datetime.combine(day, time(), tzinfo=UTC)
        _rebuild_hours(merchant_id, start, start + timedelta(days=1))
        day, count = day + timedelta(days=1), count + 1
    return count


@transaction.atomic
def _rebuild_hours(merchant_id: int | None, start: datetime, end: datetime) -> None:
    if connection.vendor == "postgresql":
        tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in (SalesHour, ProductSalesHour))
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
    for model in (SalesHour, ProductSalesHour):
        kept = model.objects.filter(hour__gte=start, hour__lt=end)
        (kept if merchant_id is None else kept.filter(merchant_id=merchant_id)).delete()
    orders = _sold_orders(merchant_id).filter(device_created_at__gte=start, device_created_at__lt=end)
    sales = (
        orders.annotate(
            m=F("merchant_id"), l=F("location_id"), d=F("device_id"),
            h=Trunc("device_created_at", "hour", tzinfo=UTC), c=F("currency"), p=F("payment_method"),
        )
        .values("m", "l", "d", "h", "c", "p")
        .annotate(n=Count("pk"), a=Sum(net_amount()))
        .order_by()
    )  # fmt: skip
    items = (
        OrderItem.objects.filter(order__in=orders)
        .annotate(
            m=F("order__merchant_id"), l=F("order__location_id"), d=F("order__device_id"),
            h=Trunc("order__device_created_at", "hour", tzinfo=UTC), c=F("order__currency"),
            p=F("product_id"), nm=F("name"),
        )
        .values("m", "l", "d", "h", "c", "p", "nm")
        .annotate(n=Sum("qty"), a=Sum(F("qty") * F("unit_price"), output_field=DecimalField(**MONEY)))
        .order_by()
    )  # fmt: skip
    _insert_select(SalesHour, SALES_KEY + SALES_SUMS, sales, "m l d h c p n a")
    _insert_select(ProductSalesHour, PRODUCT_KEY + PRODUCT_SUMS, items, "m l d h c p nm n a")


def _insert_select(model, columns: tuple, queryset, aliases: str) -> None:
    """INSERT ... SELECT of an aggregate queryset, its columns picked by alias (the order Django
    compiles them in is not the one they were named in)."""
    quote = connection.ops.quote_name
    sql, params = queryset.query.sql_with_params()
    picked = ", ".join(f"s.{quote(a)}" for a in aliases.split())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"SELECT {picked} FROM ({sql}) s",
            params,
        )
