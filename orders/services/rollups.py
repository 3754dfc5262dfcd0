"""Sales rollups, kept in the transaction that changes the orders: per machine and UTC hour
(orders.models.SalesHour, ProductSalesHour), per merchant and UTC hour (MerchantSalesHour,
MerchantProductSalesHour) and per machine and day of its merchant's zone (DeviceSalesDay).

Each write adds what changed to the rows it touches with one `INSERT ... ON CONFLICT DO UPDATE SET
x = x + excluded.x` per table and batch of orders (PostgreSQL and SQLite alike; on PostgreSQL all of a
write's statements go in one round trip): concurrent writers never lose an increment, since the
database adds under the row's lock, and every writer writes the tables in one order and each table's
rows in one order, so two of them cannot deadlock. A refund that takes an order out of the sales
removes the rows it leaves empty, so the kept rows are exactly those a rebuild from the orders makes.

`rebuild_sales_rollups` recomputes a range from the orders, a UTC day per transaction, holding the
rollup tables' write lock on PostgreSQL meanwhile (an order arriving then waits for the day, rather
than being added to a row the rebuild is replacing).
"""

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Count, DecimalField, F, Max, Min, Sum
from django.db.models.functions import Trunc, TruncDate

from accounts.models import Merchant
from orders.models import (
    MONEY,
    DeviceSalesDay,
    MerchantProductSalesHour,
    MerchantSalesHour,
    Order,
    OrderItem,
    ProductSalesHour,
    SalesHour,
)
from orders.selectors import SOLD_STATUSES, net_amount

SALES_KEY = ("merchant_id", "location_id", "device_id", "hour", "currency", "payment_method")
SALES_SUMS = ("orders", "amount")
PRODUCT_KEY = ("merchant_id", "location_id", "device_id", "hour", "currency", "product_id", "name")
PRODUCT_SUMS = ("qty", "amount")
MERCHANT_SALES_KEY = ("merchant_id", "hour", "currency", "payment_method")
MERCHANT_PRODUCT_KEY = ("merchant_id", "hour", "currency", "product_id", "name")
DEVICE_DAY_KEY = ("merchant_id", "location_id", "device_id", "day", "currency")
# Every writer writes the tables in this order.
TABLES = (
    (SalesHour, SALES_KEY, SALES_SUMS),
    (ProductSalesHour, PRODUCT_KEY, PRODUCT_SUMS),
    (MerchantSalesHour, MERCHANT_SALES_KEY, SALES_SUMS),
    (MerchantProductSalesHour, MERCHANT_PRODUCT_KEY, PRODUCT_SUMS),
    (DeviceSalesDay, DEVICE_DAY_KEY, SALES_SUMS),
)
ROLLUP_MODELS = tuple(model for model, _, _ in TABLES)


def utc_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def is_sale(order: Order) -> bool:
    return not order.is_test and order.payment_status in SOLD_STATUSES


def _order_key(order: Order) -> tuple:
    hour = utc_hour(order.device_created_at)
    return (order.merchant_id, order.location_id, order.device_id, hour, order.currency)


def merchant_zones(merchant_ids) -> dict[int, ZoneInfo]:
    rows = Merchant.objects.filter(pk__in=set(merchant_ids)).values_list("pk", "time_zone")
    return {pk: ZoneInfo(name) for pk, name in rows}


class _Changes:
    """What a write adds to each rollup table: key -> [count, amount]."""

    def __init__(self, zones: dict[int, ZoneInfo]):
        self.zones = zones
        self.rows = {model: defaultdict(lambda: [0, Decimal(0)]) for model in ROLLUP_MODELS}

    def _add(self, model, key: tuple, count: int, amount: Decimal) -> None:
        row = self.rows[model][key]
        row[0] += count
        row[1] += amount

    def order(self, order: Order, count: int, amount: Decimal) -> None:
        merchant, location, device, hour, currency = _order_key(order)
        day = order.device_created_at.astimezone(self.zones[merchant]).date()
        self._add(
            SalesHour, (merchant, location, device, hour, currency, order.payment_method), count, amount
        )
        self._add(MerchantSalesHour, (merchant, hour, currency, order.payment_method), count, amount)
        self._add(DeviceSalesDay, (merchant, location, device, day, currency), count, amount)

    def item(self, order: Order, item: OrderItem, sign: int) -> None:
        merchant, location, device, hour, currency = _order_key(order)
        qty, amount = sign * item.qty, sign * item.qty * item.unit_price
        product = (currency, item.product_id, item.name)
        self._add(ProductSalesHour, (merchant, location, device, hour, *product), qty, amount)
        self._add(
            MerchantProductSalesHour, (merchant, hour, currency, item.product_id, item.name), qty, amount
        )

    def statements(self, *, drop_emptied: bool = False) -> list[tuple[str, list]]:
        statements = [_upsert(model, key, sums, self.rows[model]) for model, key, sums in TABLES]
        if drop_emptied:
            statements += [_delete_emptied(model, key, sums, self.rows[model]) for model, key, sums in TABLES]
        return [s for s in statements if s is not None]


def add_sales(orders: list[Order], items: list[OrderItem]) -> None:
    """Add freshly inserted orders and their items (each knowing its order) to the rollups."""
    sold = [order for order in orders if is_sale(order)]
    if not sold:
        return
    changes = _Changes(merchant_zones(order.merchant_id for order in sold))
    for order in sold:
        changes.order(order, 1, order.total - order.refunded_total)
    for item in items:
        if is_sale(item.order):
            changes.item(item.order, item, 1)
    _execute(changes.statements())


def record_refund(order: Order, *, was_sale: bool, refunded: Decimal) -> None:
    """After `order` (locked by the caller) was refunded `refunded` successfully: its amount leaves the
    sales, and so does the order itself, with its products, when it is no longer a sale."""
    if not was_sale or not refunded:
        return
    changes = _Changes(merchant_zones([order.merchant_id]))
    if is_sale(order):
        changes.order(order, 0, -refunded)
        _execute(changes.statements())
        return
    changes.order(order, -1, -refunded)
    for item in order.items.all():
        changes.item(order, item, -1)
    _execute(changes.statements(drop_emptied=True))


def _adapt(value):
    ops = connection.ops
    if isinstance(value, datetime):
        return ops.adapt_datetimefield_value(value)
    if isinstance(value, date):
        return ops.adapt_datefield_value(value)
    if isinstance(value, Decimal):
        return ops.adapt_decimalfield_value(value, **MONEY)
    return value


def key_column(column: str) -> str:
    return "COALESCE(location_id, 0)" if column == "location_id" else connection.ops.quote_name(column)


def _upsert(model, key: tuple, sums: tuple, deltas: dict) -> tuple[str, list] | None:
    if not deltas:
        return None
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    target = ", ".join(key_column(c) for c in key)
    row = "(" + ", ".join(["%s"] * (len(key) + len(sums))) + ")"
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in sums)
    params = []
    for row_key, values in sorted(deltas.items(), key=lambda kv: str(kv[0])):  # one lock order for all
        params += [_adapt(v) for v in (*row_key, *values)]
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in key + sums)}) "
        f"VALUES {', '.join([row] * len(deltas))} ON CONFLICT ({target}) DO UPDATE SET {updates}"
    )
    return sql, params


def _delete_emptied(model, key: tuple, sums: tuple, deltas: dict) -> tuple[str, list] | None:
    """The rows of `deltas`' keys whose count came down to nothing."""
    if not deltas:
        return None
    quote = connection.ops.quote_name
    match = "(" + " AND ".join(f"{key_column(c)} = %s" for c in key) + ")"
    params = []
    for row_key in deltas:
        params += [
            0 if v is None and c == "location_id" else _adapt(v) for c, v in zip(key, row_key, strict=True)
        ]
    sql = (
        f"DELETE FROM {quote(model._meta.db_table)} WHERE {quote(sums[0])} = 0 "
        f"AND ({' OR '.join([match] * len(deltas))})"
    )
    return sql, params


def _execute(statements: list[tuple[str, list]]) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(statements) > 1:
            # Django's psycopg cursor binds on the client side, so several statements go in one execute.
            cursor.execute(
                "; ".join(sql for sql, _ in statements), [p for _, params in statements for p in params]
            )
            return
        for sql, params in statements:
            cursor.execute(sql, params)


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
    the orders add up to, and the machines' days of the merchants' zones those UTC days touch;
    idempotent. Returns the number of days rebuilt."""
    days = _days_to_rebuild(merchant_id, first_day, last_day)
    if days is None:
        return 0
    merchants = Merchant.objects.all() if merchant_id is None else Merchant.objects.filter(pk=merchant_id)
    zones = defaultdict(list)
    for pk, name in merchants.values_list("pk", "time_zone"):
        zones[name].append(pk)
    day, count = days[0], 0
    while day <= days[1]:
        start = datetime.combine(day, time(), tzinfo=UTC)
        _rebuild_day(merchant_id, zones, start, start + timedelta(days=1))
        day, count = day + timedelta(days=1), count + 1
    return count


@transaction.atomic
def _rebuild_day(
    merchant_id: int | None, zones: dict[str, list[int]], start: datetime, end: datetime
) -> None:
    if connection.vendor == "postgresql":
        tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in ROLLUP_MODELS)
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
    for model in ROLLUP_MODELS[:4]:
        kept = model.objects.filter(hour__gte=start, hour__lt=end)
        (kept if merchant_id is None else kept.filter(merchant_id=merchant_id)).delete()
    orders = _sold_orders(merchant_id).filter(device_created_at__gte=start, device_created_at__lt=end)
    hour = Trunc("device_created_at", "hour", tzinfo=UTC)
    sales = orders.annotate(
        m=F("merchant_id"), l=F("location_id"), d=F("device_id"), h=hour, c=F("currency"),
        p=F("payment_method"),
    )  # fmt: skip
    sums = {"n": Count("pk"), "a": Sum(net_amount())}
    _insert_select(
        SalesHour, SALES_KEY + SALES_SUMS, sales.values(*"mldhcp").annotate(**sums), "m l d h c p n a"
    )
    _insert_select(
        MerchantSalesHour,
        MERCHANT_SALES_KEY + SALES_SUMS,
        sales.values(*"mhcp").annotate(**sums),
        "m h c p n a",
    )
    items = OrderItem.objects.filter(order__in=orders).annotate(
        m=F("order__merchant_id"), l=F("order__location_id"), d=F("order__device_id"),
        h=Trunc("order__device_created_at", "hour", tzinfo=UTC), c=F("order__currency"),
        p=F("product_id"), nm=F("name"),
    )  # fmt: skip
    item_sums = {"n": Sum("qty"), "a": Sum(F("qty") * F("unit_price"), output_field=DecimalField(**MONEY))}
    _insert_select(
        ProductSalesHour, PRODUCT_KEY + PRODUCT_SUMS,
        items.values("m", "l", "d", "h", "c", "p", "nm").annotate(**item_sums), "m l d h c p nm n a",
    )  # fmt: skip
    _insert_select(
        MerchantProductSalesHour, MERCHANT_PRODUCT_KEY + PRODUCT_SUMS,
        items.values("m", "h", "c", "p", "nm").annotate(**item_sums), "m h c p nm n a",
    )  # fmt: skip
    for name, merchant_ids in zones.items():
        _rebuild_machine_days(ZoneInfo(name), merchant_ids, start, end)


def _rebuild_machine_days(zone: ZoneInfo, merchant_ids: list[int], start: datetime, end: datetime) -> None:
    """The DeviceSalesDay rows of the local days (of `zone`, these merchants') that [start, end) touches,
    each recomputed from all of its orders (a local day straddles two UTC days)."""
    first, last = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone).date()
    DeviceSalesDay.objects.filter(merchant_id__in=merchant_ids, day__gte=first, day__lte=last).delete()
    orders = Order.objects.filter(
        merchant_id__in=merchant_ids, is_test=False, payment_status__in=SOLD_STATUSES,
        device_created_at__gte=datetime.combine(first, time(), tzinfo=zone),
        device_created_at__lt=datetime.combine(last + timedelta(days=1), time(), tzinfo=zone),
    )  # fmt: skip
    days = (
        orders.annotate(
            m=F("merchant_id"), l=F("location_id"), d=F("device_id"),
            dd=TruncDate("device_created_at", tzinfo=zone), c=F("currency"),
        )
        .values("m", "l", "d", "dd", "c")
        .annotate(n=Count("pk"), a=Sum(net_amount()))
    )  # fmt: skip
    _insert_select(DeviceSalesDay, DEVICE_DAY_KEY + SALES_SUMS, days, "m l d dd c n a")


def _insert_select(model, columns: tuple, queryset, aliases: str) -> None:
    """INSERT ... SELECT of an aggregate queryset, its columns picked by alias (the order Django
    compiles them in is not the one they were named in)."""
    quote = connection.ops.quote_name
    sql, params = queryset.order_by().query.sql_with_params()
    picked = ", ".join(f"s.{quote(a)}" for a in aliases.split())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"SELECT {picked} FROM ({sql}) s",
            params,
        )
