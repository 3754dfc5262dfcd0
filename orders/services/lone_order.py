"""A lone new order in one round trip to PostgreSQL: the common case of `ingest_orders`, written out.

A machine sends its sales one at a time, nearly always new ones. `ingest_orders` takes such an order
in five statements over the ORM, each a round trip, and the ORM's per-statement work was most of an
order's CPU (bench/README.md, "Where a single order's time goes"). Here the same rows are written by
statements sent together as one query string, which PostgreSQL runs as one implicit transaction:

1. the order, with the machine's merchant, location and package read from its row in the same
   statement, and its items (one `INSERT ... RETURNING` feeding the other);
2. the sales rollups, one `INSERT ... ON CONFLICT DO UPDATE` per table in `rollups.TABLES` order
   (the order every writer keeps), their key read from the order just written.

Anything else is the full path's: an order already received (the unique constraint fails the
insert and nothing is written), a machine gone, a method the merchant has not defined, SQLite.
"""

from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

from accounts.models import Merchant
from coffeeshop.live import broadcast_after_commit
from devices.models import Device
from orders.models import BUILT_IN_PAYMENT_METHODS, Order, OrderItem
from orders.selectors import SOLD_STATUSES
from orders.services import rollups
from orders.services.ingest import OrderInput, item_rows, order_fields, orders_created_event
from orders.services.rollups import TABLES

# Where each column of a rollup key comes from: the order row `o`, its merchant `m`, or the item
# values `v` (product tables only).
_ROLLUP_SOURCES = {
    "merchant_id": "o.merchant_id",
    "location_id": "o.location_id",
    "device_id": "o.device_id",
    "hour": "date_trunc('hour', o.device_created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "day": "CAST(o.device_created_at AT TIME ZONE m.time_zone AS date)",
    "currency": "o.currency",
    "payment_method": "o.payment_method",
    "product_id": "v.product_id",
    "name": "v.name",
    "orders": "1",
    "qty": "v.qty",
}
_PRODUCT_VALUES = ("product_id", "name", "qty", "amount")


def takes_lone_order(order: OrderInput) -> bool:
    """Whether `insert_lone_order` can take the order (else the full path must)."""
    return connection.vendor == "postgresql" and order.payment_method in BUILT_IN_PAYMENT_METHODS


def insert_lone_order(device_id: int, order: OrderInput, now: datetime) -> Order | None:
    """Record a new lone order (see `takes_lone_order`) and return it; None, having written nothing,
    when the order was already received or the machine is gone: `ingest_orders` then answers."""
    values = order_fields(order, now)
    statements = [_order_statement(device_id, values, order)]
    if not order.is_test and order.payment_status in SOLD_STATUSES:
        statements += [_rollup_statement(model, key, sums, device_id, order) for model, key, sums in TABLES]
    sql = "; ".join(s for s, _ in statements)
    params = [p for _, ps in statements for p in ps]
    try:
        block = transaction.atomic() if connection.in_atomic_block else nullcontext()
        with block, connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    except IntegrityError:
        return None
    saved = Order(pk=row[0], merchant_id=row[1], location_id=row[2], device_id=device_id, **values)
    event, payload = orders_created_event(device_id, [saved])
    broadcast_after_commit(saved.merchant_id, event, payload)
    return saved


def _cast(field) -> str:
    return f"CAST(%s AS {field.cast_db_type(connection)})"


def _order_statement(device_id: int, values: dict, order: OrderInput) -> tuple[str, list]:
    """The order and its items. The machine's row is joined to a row that always exists: a machine
    gone leaves its columns NULL and the insert fails on NOT NULL rather than writing nothing."""
    quote = connection.ops.quote_name
    from_device = {
        "merchant_id": "d.merchant_id",
        "location_id": "d.location_id",
        "device_id": "d.id",
        "package_version": "d.package_version",
    }
    template = Order(**values)
    columns, selected, params = [], [], []
    for field in Order._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quote(field.column))
        if field.attname in from_device:
            selected.append(from_device[field.attname])
        else:
            selected.append(_cast(field))
            params.append(field.get_db_prep_save(getattr(template, field.attname), connection))
    item_fields = [OrderItem._meta.get_field(n) for n in ("position", "product_id", "name", "qty")]
    item_fields += [OrderItem._meta.get_field(n) for n in ("unit_price", "recipe_version", "options")]
    rows = []
    for item_row in item_rows(None, order):
        rows.append("(" + ", ".join(_cast(f) for f in item_fields) + ")")
        params += [f.get_db_prep_save(getattr(item_row, f.attname), connection) for f in item_fields]
    item_columns = ", ".join(quote(f.column) for f in item_fields)
    sql = (
        f"WITH o AS (INSERT INTO {quote(Order._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(selected)} FROM (SELECT 1) AS one LEFT JOIN {quote(Device._meta.db_table)} d "
        f"ON d.id = {int(device_id)} RETURNING id, merchant_id, location_id), "
        f"i AS (INSERT INTO {quote(OrderItem._meta.db_table)} (order_id, {item_columns}) "
        f"SELECT o.id, v.* FROM o CROSS JOIN (VALUES {', '.join(rows)}) AS v) "
        f"SELECT id, merchant_id, location_id FROM o"
    )
    return sql, params


def _product_rows(order: OrderInput) -> list[tuple]:
    """The order's items per (product, name), in the order `rollups` writes a table's rows."""
    sums: dict[tuple[str, str], list] = {}
    for item in order.items:
        row = sums.setdefault((item.product_id, item.name), [0, Decimal(0)])
        row[0] += item.qty
        row[1] += item.qty * item.unit_price
    return sorted(((*k, *v) for k, v in sums.items()), key=lambda r: repr((r[0], r[1])))


def _rollup_statement(model, key: tuple, sums: tuple, device_id: int, order: OrderInput) -> tuple[str, list]:
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    is_product = "product_id" in key
    sources = {**_ROLLUP_SOURCES, "amount": "v.amount" if is_product else "o.total"}
    params: list = []
    items = ""
    if is_product:
        fields = [model._meta.get_field(n) for n in _PRODUCT_VALUES]
        rows = []
        for values in _product_rows(order):
            rows.append("(" + ", ".join(_cast(f) for f in fields) + ")")
            params += [f.get_db_prep_save(v, connection) for f, v in zip(fields, values, strict=True)]
        items = f" CROSS JOIN (VALUES {', '.join(rows)}) AS v ({', '.join(_PRODUCT_VALUES)})"
    params += [order.order_id]
    target = ", ".join(rollups.key_column(c) for c in key)
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in sums)
    orders, merchants = quote(Order._meta.db_table), quote(Merchant._meta.db_table)
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in key + sums)}) "
        f"SELECT {', '.join(sources[c] for c in key + sums)} "
        f"FROM {orders} o JOIN {merchants} m ON m.id = o.merchant_id{items} "
        f"WHERE o.device_id = {int(device_id)} AND o.machine_order_id = %s "
        f"ON CONFLICT ({target}) DO UPDATE SET {updates}"
    )
    return sql, params
