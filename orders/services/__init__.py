"""Every write to sales that carries a rule."""

from orders.services.exceptions import mark_exception, resolve_exception
from orders.services.export import run_orders_export, start_orders_export
from orders.services.ingest import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    IngestResult,
    ItemInput,
    OrderInput,
    ingest_orders,
)
from orders.services.refunds import refund_order

__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "REJECTED",
    "IngestResult",
    "ItemInput",
    "OrderInput",
    "ingest_orders",
    "mark_exception",
    "refund_order",
    "resolve_exception",
    "run_orders_export",
    "start_orders_export",
]
