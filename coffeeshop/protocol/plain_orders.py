"""A lone order in its plain form, read without DRF (protocol "Orders", 1.1 limits).

`OrderSerializer` stays the reference: this reads only what it would take as sent, and the same
values it would make of it. Anything else (a field out of its plain form, a rule broken, whitespace
a CharField would trim) gives None, and the full path answers it, errors included.
"""

import re
from decimal import Decimal

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from coffeeshop.api.json_values import holds_nul
from coffeeshop.protocol.fields import INT64_MAX, INT64_MIN
from orders.models import MACHINE_PAYMENT_STATUSES
from orders.services import ItemInput, OrderInput

_ORDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_METHOD = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_MONEY = re.compile(r"(?:0|[1-9][0-9]{0,9})\.[0-9]{2}")  # max_digits=12, decimal_places=2, min 0
_STATUSES = frozenset(MACHINE_PAYMENT_STATUSES)


def _text(data: dict, name: str, max_length: int, *, blank: bool = False, default=None) -> str | None:
    value = data.get(name, default)
    if (
        not isinstance(value, str)
        or len(value) > max_length
        or (not value and not blank)
        or value != value.strip()
        or "\x00" in value
    ):
        return None
    return value


def _matching(data: dict, name: str, pattern: re.Pattern) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


def _money(value) -> Decimal | None:
    return Decimal(value) if isinstance(value, str) and _MONEY.fullmatch(value) else None


def _plain_options(value) -> bool:
    """Options a DictField takes as they are: flat, of plain scalars, with no NUL anywhere."""
    return (
        isinstance(value, dict)
        and not holds_nul(value)
        and all(
            value is None
            or isinstance(value, (str, bool, float))
            or (type(value) is int and INT64_MIN <= value <= INT64_MAX)
            for value in value.values()
        )
    )


def _item(data) -> ItemInput | None:
    if not isinstance(data, dict):
        return None
    product_id, name = _text(data, "product_id", 64), _text(data, "name", 120)
    recipe_version = _text(data, "recipe_version", 32, blank=True, default="")
    qty, unit_price = data.get("qty"), _money(data.get("unit_price"))
    options = data.get("options", {})
    if (
        None in (product_id, name, recipe_version, unit_price)
        or type(qty) is not int
        or not 1 <= qty <= 1000
        or not _plain_options(options)
    ):
        return None
    return ItemInput(product_id, name, qty, unit_price, recipe_version, options)


def _created_at(value):
    """As DRF's DateTimeField makes it: parsed, required to carry an offset, in the current zone."""
    if not isinstance(value, str) or value != value.strip():
        return None
    try:
        parsed = parse_datetime(value)
        return parsed.astimezone(timezone.get_current_timezone()) if parsed and parsed.tzinfo else None
    except (ValueError, OverflowError):
        return None


def plain_order_input(data) -> OrderInput | None:
    """The lone order `data` (parsed JSON) is, when it is one in its plain form; else None."""
    if not isinstance(data, dict) or "orders" in data:
        return None
    payment, raw_items, is_test = data.get("payment"), data.get("items"), data.get("is_test", False)
    if not isinstance(payment, dict) or not isinstance(raw_items, list) or type(is_test) is not bool:
        return None
    order_id, currency = _matching(data, "order_id", _ORDER_ID), _matching(data, "currency", _CURRENCY)
    method, status = _matching(payment, "method", _METHOD), payment.get("status")
    transaction_id = _text(payment, "transaction_id", 128, blank=True, default="")
    created_at, total = _created_at(data.get("created_at")), _money(data.get("total"))
    items = tuple(_item(raw) for raw in raw_items)
    if (
        None in (order_id, currency, method, transaction_id, created_at, total)
        or not isinstance(status, str)
        or status not in _STATUSES
        or not 1 <= len(items) <= 50
        or None in items
        or total != sum((item.qty * item.unit_price for item in items), start=0)
    ):
        return None
    return OrderInput(
        order_id=order_id,
        created_at=created_at,
        currency=currency,
        total=total,
        payment_method=method,
        payment_status=status,
        transaction_id=transaction_id,
        items=items,
        is_test=is_test,
    )
