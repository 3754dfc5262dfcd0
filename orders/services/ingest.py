"""Taking a machine's sales exactly once.

The machine's `order_id` is the idempotency key, unique per machine and enforced by the database:
the same order again is a harmless "duplicate" (the original result), the same id with other content
is a conflict, and two concurrent retries of one order cannot both insert it (the unique constraint
decides; the loser reads the winner's row). A backlog is taken order by order in outcome, but written
in bulk: one bad order never costs the good ones.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from coffeeshop.live import broadcast_after_commit
from devices.models import Device
from orders.models import BUILT_IN_PAYMENT_METHODS, UNKNOWN_PAYMENT_METHOD, Order, OrderItem, PaymentMethod
from orders.services import rollups

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"


@dataclass(frozen=True)
class ItemInput:
    product_id: str
    name: str
    qty: int
    unit_price: Decimal
    recipe_version: str = ""
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OrderInput:
    order_id: str
    created_at: datetime
    currency: str
    total: Decimal
    payment_method: str
    payment_status: str
    transaction_id: str
    items: tuple[ItemInput, ...]
    is_test: bool = False

    def content_hash(self) -> str:
        """The order's content, independent of key order and formatting: what "the same order" means."""
        canonical = {
            "created_at": self.created_at.isoformat(),
            "currency": self.currency,
            "total": str(self.total),
            "payment": [self.payment_method, self.payment_status, self.transaction_id],
            "is_test": self.is_test,
            "items": [
                [i.product_id, i.name, i.qty, str(i.unit_price), i.recipe_version, i.options]
                for i in self.items
            ],
        }
        return hashlib.sha256(
            json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()


@dataclass(frozen=True)
class IngestResult:
    order_id: str
    result: str
    error: dict | None = None
    order: Order | None = None

    @property
    def is_conflict(self) -> bool:
        return self.error is not None and self.error.get("code") == "CONFLICT"


def conflict_error(order_id: str) -> dict:
    return {
        "code": "CONFLICT",
        "message": _("Order %(id)s was already received with different content.") % {"id": order_id},
        "details": {"fields": {"order_id": [_("already used for another order")]}},
    }


def ingest_orders(
    device_id: int, orders: list[OrderInput], now: datetime | None = None
) -> list[IngestResult]:
    """Record a machine's orders; one result per order, in order. Safe to call again with the same orders.

    A lone order is inserted straight away: a retry is the rare case, and the unique constraint finds it
    without a look-up before every first send."""
    now = now or timezone.now()
    device = Device.objects.only(
        "pk", "merchant_id", "location_id", "serial", "alias", "package_version"
    ).get(pk=device_id)
    if len(orders) == 1:
        return [_ingest_one(device, orders[0], now)]
    results: dict[int, IngestResult] = {}
    existing = {
        o.machine_order_id: o
        for o in Order.objects.filter(device_id=device_id, machine_order_id__in=[o.order_id for o in orders])
    }
    fresh: list[tuple[int, OrderInput]] = []
    seen_in_request: dict[str, OrderInput] = {}
    for position, order in enumerate(orders):
        known = existing.get(order.order_id)
        twin = seen_in_request.get(order.order_id)
        if known is not None:
            results[position] = _against_existing(order, known)
        elif twin is not None:
            same = twin.content_hash() == order.content_hash()
            results[position] = (
                IngestResult(order.order_id, DUPLICATE)
                if same
                else IngestResult(order.order_id, REJECTED, conflict_error(order.order_id))
            )
        else:
            seen_in_request[order.order_id] = order
            fresh.append((position, order))
    if fresh:
        try:
            with transaction.atomic():
                created = _insert(device, [o for _, o in fresh], now)
            results.update(
                {
                    pos: IngestResult(o.order_id, ACCEPTED, order=row)
                    for (pos, o), row in zip(fresh, created, strict=True)
                }
            )
        except IntegrityError:
            # A concurrent request inserted one of them first: take them one at a time.
            results.update({pos: _ingest_one(device, o, now) for pos, o in fresh})
    return [results[position] for position in range(len(orders))]


def _against_existing(order: OrderInput, known: Order) -> IngestResult:
    if known.content_hash == order.content_hash():
        return IngestResult(order.order_id, DUPLICATE, order=known)
    return IngestResult(order.order_id, REJECTED, conflict_error(order.order_id), order=known)


def _ingest_one(device: Device, order: OrderInput, now: datetime) -> IngestResult:
    try:
        with transaction.atomic():
            (row,) = _insert(device, [order], now)
        return IngestResult(order.order_id, ACCEPTED, order=row)
    except IntegrityError:
        known = Order.objects.get(device_id=device.pk, machine_order_id=order.order_id)
        return _against_existing(order, known)


def _insert(device: Device, orders: list[OrderInput], now: datetime) -> list[Order]:
    undefined = undefined_payment_methods(device.merchant_id, {o.payment_method for o in orders})
    rows = Order.objects.bulk_create(
        [
            Order(
                **_unknown_method_exception(now) if o.payment_method in undefined else {},
                merchant_id=device.merchant_id,
                location_id=device.location_id,
                device_id=device.pk,
                package_version=device.package_version,
                **order_fields(o, now),
            )
            for o in orders
        ]
    )
    if rows and rows[0].pk is None:  # backends that cannot return ids from a bulk insert
        by_id = {
            o.machine_order_id: o
            for o in Order.objects.filter(
                device_id=device.pk, machine_order_id__in=[o.order_id for o in orders]
            )
        }
        rows = [by_id[o.order_id] for o in orders]
    items = OrderItem.objects.bulk_create(
        [item for row, order in zip(rows, orders, strict=True) for item in item_rows(row, order)]
    )
    rollups.add_sales(rows, items)
    broadcast_after_commit(device.merchant_id, *orders_created_event(device.pk, rows))
    return rows


def order_fields(order: OrderInput, now: datetime) -> dict:
    """An order's columns as the machine sent it, received `now`."""
    return {
        "machine_order_id": order.order_id,
        "currency": order.currency,
        "total": order.total,
        "payment_method": order.payment_method,
        "payment_status": order.payment_status,
        "transaction_id": order.transaction_id,
        "device_created_at": order.created_at,
        "received_at": now,
        "is_test": order.is_test,
        "content_hash": order.content_hash(),
    }


def item_rows(row: Order | None, order: OrderInput) -> list[OrderItem]:
    """The order's items, unsaved, for the order `row`."""
    return [
        OrderItem(
            order=row,
            position=position,
            product_id=item.product_id,
            name=item.name,
            qty=item.qty,
            unit_price=item.unit_price,
            recipe_version=item.recipe_version,
            options=item.options,
        )
        for position, item in enumerate(order.items)
    ]


def orders_created_event(device_id: int, rows: list[Order]) -> tuple[str, dict]:
    """The live event staff pages hear when a machine's orders were recorded."""
    return "orders.created", {
        "device_id": device_id,
        "orders": [
            {
                "id": row.pk,
                "order_id": row.machine_order_id,
                "total": str(row.total),
                "currency": row.currency,
                "payment_method": row.payment_method,
                "payment_status": row.payment_status,
            }
            for row in rows
        ],
    }


def undefined_payment_methods(merchant_id: int, codes: set[str]) -> set[str]:
    """The methods among `codes` the merchant takes neither built in nor by defining them."""
    codes = codes - BUILT_IN_PAYMENT_METHODS.keys()
    if not codes:
        return set()
    defined = PaymentMethod.objects.filter(merchant_id=merchant_id, code__in=codes).values_list(
        "code", flat=True
    )
    return codes - set(defined)


def _unknown_method_exception(now: datetime) -> dict:
    """A sale with a method nobody defined still happened (protocol 1.1): it is taken as reported, and
    staff see it as an exception to resolve (define the method, or find out what the machine did)."""
    return {"is_exception": True, "exception_reason": UNKNOWN_PAYMENT_METHOD, "exception_marked_at": now}
