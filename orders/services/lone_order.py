"""A lone new order in one round trip to PostgreSQL: the common case of `ingest_orders`, written out.

A machine sends its sales one at a time, nearly always new ones. `ingest_orders` takes such an order
in five statements over the ORM, each a round trip, and the ORM's per-statement work was most of an
order's CPU (bench/README.md, "Where a single order's time goes"). Here the same rows are written by
statements sent together as one query string, which PostgreSQL runs as one implicit transaction:

1. the order, with the machine's merchant, location and package read from its row in the same
   statement, and its items (one `INSERT ... RETURNING` feeding the other);
2. the sales rollups, one `INSERT ... ON CONFLICT DO UPDATE` per table in `rollups.TABLES` order
   (the order every writer keeps), their key read from the order and items just written.

The statements' text depends only on the number of items and whether the order is a sale, so it
is built once per shape; a request only adapts its values.

Anything else is the full path's: an order already received (the unique constraint fails the
insert and nothing is written), a machine gone, a method the merchant has not defined, SQLite, and a
database connection found dead (closed here, so the full path opens a new one).
"""

import functools
from contextlib import nullcontext
from datetime import datetime

from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction

from accounts.models import Merchant
from coffeeshop.live import broadcast_after_commit
from devices.models import Device
from orders.models import BUILT_IN_PAYMENT_METHODS, Order, OrderItem
from orders.selectors import SOLD_STATUSES
from orders.services import rollups
from orders.services.ingest import OrderInput, item_rows, order_fields, orders_created_event
from orders.services.rollups import TABLES

# The columns the machine's row gives; the others are `order_fields` or their model default.
FROM_DEVICE = {
    "merchant_id": "d.merchant_id",
    "location_id": "d.location_id",
    "device_id": "d.id",
    "package_version": "d.package_version",
}
ITEM_COLUMNS = ("position", "product_id", "name", "qty", "unit_price", "recipe_version", "options")
# Where each column of a rollup key or sum comes from: the order `o`, its merchant `m`, or its
# items summed per product and name `v` (product tables only).
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


def takes_lone_order(order: OrderInput) -> bool:
    """Whether `insert_lone_order` can take the order (else the full path must)."""
    return connection.vendor == "postgresql" and order.payment_method in BUILT_IN_PAYMENT_METHODS


def insert_lone_order(device_id: int, order: OrderInput, now: datetime) -> Order | None:
    """Record a new lone order (see `takes_lone_order`) and return it; None, having written nothing,
    when the order was already received or the machine is gone: `ingest_orders` then answers."""
    values = order_fields(order, now)
    is_sale = not order.is_test and order.payment_status in SOLD_STATUSES
    names = tuple(values)
    params = [field.get_db_prep_save(values[field.attname], connection) for field in _machine_fields(names)]
    params.append(device_id)
    item_fields = _fields(OrderItem, ITEM_COLUMNS)
    for item in item_rows(None, order):
        params += [field.get_db_prep_save(getattr(item, field.attname), connection) for field in item_fields]
    if is_sale:
        params += [device_id, order.order_id] * len(TABLES)
    try:
        block = transaction.atomic() if connection.in_atomic_block else nullcontext()
        with block, connection.cursor() as cursor:
            cursor.execute(_statements(names, len(order.items), is_sale), params)
            row = cursor.fetchone()
    except IntegrityError:
        return None
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        # A connection that died with its server (a PostgreSQL restart this process slept through)
        # fails its first statement: drop it, and the full path answers on a new one, or 503 if the
        # server is still down, as it would have without this lane.
        connection.close_if_unusable_or_obsolete()
        return None
    saved = Order(pk=row[0], merchant_id=row[1], location_id=row[2], device_id=device_id, **values)
    broadcast_after_commit(saved.merchant_id, *orders_created_event(device_id, [saved]))
    return saved


@functools.cache
def _machine_fields(names: tuple[str, ...]) -> tuple:
    """The fields `names` (the order's, as a machine fills them), in the order of the table's columns
    (that of the statement's placeholders)."""
    return tuple(f for f in Order._meta.concrete_fields if f.attname in names)


@functools.cache
def _fields(model, names: tuple[str, ...]) -> tuple:
    return tuple(model._meta.get_field(name) for name in names)


def _cast(field) -> str:
    return f"CAST(%s AS {field.cast_db_type(connection)})"


@functools.cache
def _statements(names: tuple[str, ...], item_count: int, is_sale: bool) -> str:
    sql = _order_statement(names, item_count)
    if is_sale:
        sql += "; " + "; ".join(_rollup_statement(model, key, sums) for model, key, sums in TABLES)
    return sql


def _order_statement(names: tuple[str, ...], item_count: int) -> str:
    """The order and its items. The machine's row is joined to a row that always exists: a machine
    gone leaves its columns NULL and the insert fails on NOT NULL rather than writing nothing.
    Columns the lane never sets (a refund, an exception) take their model default, inlined."""
    quote = connection.ops.quote_name
    defaults = Order()
    columns, selected = [], []
    for field in Order._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quote(field.column))
        if field.attname in FROM_DEVICE:
            selected.append(FROM_DEVICE[field.attname])
        elif field.attname in names:
            selected.append(_cast(field))
        else:
            default = field.get_db_prep_save(getattr(defaults, field.attname), connection)
            selected.append(connection.ops.compose_sql(_cast(field), [default]))
    item_fields = _fields(OrderItem, ITEM_COLUMNS)
    row = "(" + ", ".join(_cast(f) for f in item_fields) + ")"
    return (
        f"WITH o AS (INSERT INTO {quote(Order._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(selected)} FROM (SELECT 1) AS one LEFT JOIN {quote(Device._meta.db_table)} d "
        f"ON d.id = %s RETURNING id, merchant_id, location_id), "
        f"i AS (INSERT INTO {quote(OrderItem._meta.db_table)} "
        f"(order_id, {', '.join(quote(f.column) for f in item_fields)}) "
        f"SELECT o.id, v.* FROM o CROSS JOIN (VALUES {', '.join([row] * item_count)}) AS v) "
        f"SELECT id, merchant_id, location_id FROM o"
    )


def _rollup_statement(model, key: tuple, sums: tuple) -> str:
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    orders, merchants = quote(Order._meta.db_table), quote(Merchant._meta.db_table)
    sources = {**_ROLLUP_SOURCES, "amount": "o.total"}
    items = ""
    if "product_id" in key:
        sources["amount"] = "v.amount"
        # Per product and name, in the order `rollups` writes a table's rows (by key).
        items = (
            f" CROSS JOIN LATERAL (SELECT product_id, name, SUM(qty) AS qty, SUM(qty * unit_price) AS amount "
            f"FROM {quote(OrderItem._meta.db_table)} WHERE order_id = o.id GROUP BY product_id, name "
            f'ORDER BY product_id COLLATE "C", name COLLATE "C") AS v'
        )
    target = ", ".join(rollups.key_column(c) for c in key)
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in sums)
    return (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in key + sums)}) "
        f"SELECT {', '.join(sources[c] for c in key + sums)} "
        f"FROM {orders} o JOIN {merchants} m ON m.id = o.merchant_id{items} "
        f"WHERE o.device_id = %s AND o.machine_order_id = %s "
        f"ON CONFLICT ({target}) DO UPDATE SET {updates}"
    )
