"""What machines sell and how: the menu (`Product`, `MENU`), the weighted choices customers make, the
daily sales curve, the orders as the machine keeps them (`SaleOrder`) and their numbers across runs
(`OrderNumbers`)."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from simulator.errors import FleetConfigurationError

CURRENCY = "CNY"
CENTS = Decimal("0.01")
# The shops are in China, and China keeps UTC+8 all year: the daily curve runs on that clock, whatever
# zone a machine writes its timestamps in.
SHOP_TIMEZONE = timezone(timedelta(hours=8))
BACKLOG_LIMIT = 500
DEFAULT_SALES_PER_HOUR = 12.0
DEFAULT_DUPLICATE_PROBABILITY = 0.02
# A serial must leave room for "-YYYYMMDD-NNNNNN" within the protocol's 64-character order id.
MAX_SERIAL_PREFIX_FOR_SALES = 40


@dataclass(frozen=True)
class Product:
    """A drink on the machine's menu: its price, its share of sales (relative to the other drinks), the
    recipe version it is made by, and what one cup takes from the bins, by material code.

    The built-in menu's drinks come in sizes and with sugar (`takes_options`: a large cup takes
    LARGE_CUP_SCALE times the regular one); a recipe package's are made exactly as their recipe says.
    """

    product_id: str
    name: str
    price: Decimal
    weight: float
    recipe_version: str
    materials: Mapping[str, float] = field(default_factory=dict, compare=False)
    takes_options: bool = True


# What one regular cup of each built-in drink takes from the bins, by material code.
CUP_MATERIALS: dict[str, dict[str, float]] = {
    "americano": {"BEAN-ARABICA": 18, "WATER": 200},
    "latte": {"BEAN-ARABICA": 18, "MILK-POWDER": 12, "WATER": 180},
    "cappuccino": {"BEAN-ARABICA": 18, "MILK-POWDER": 10, "WATER": 150},
    "flat_white": {"BEAN-ARABICA": 20, "MILK-POWDER": 10, "WATER": 150},
    "mocha": {"BEAN-ARABICA": 18, "MILK-POWDER": 10, "CHOCOLATE": 20, "WATER": 180},
    "hot_chocolate": {"MILK-POWDER": 15, "CHOCOLATE": 25, "WATER": 200},
    "espresso": {"BEAN-ARABICA": 18, "WATER": 40},
}
# The menu a machine sells until it installs a recipe package (the factory recipes).
MENU: tuple[Product, ...] = tuple(
    Product(product_id, name, Decimal(price), weight, recipe_version, CUP_MATERIALS[product_id])
    for product_id, name, price, weight, recipe_version in (
        ("americano", "Americano", "12.00", 22, "2"),
        ("latte", "Latte", "18.00", 24, "3"),
        ("cappuccino", "Cappuccino", "18.00", 16, "2"),
        ("flat_white", "Flat White", "20.00", 9, "1"),
        ("mocha", "Mocha", "22.00", 7, "1"),
        ("hot_chocolate", "Hot Chocolate", "15.00", 8, "1"),
        ("espresso", "Espresso", "10.00", 14, "4"),
    )
)
MENU_BY_ID = {product.product_id: product for product in MENU}
# The same drinks at a London coffee bar's prices, in pounds.
UK_PRICES = {
    "americano": "2.80",
    "latte": "3.40",
    "cappuccino": "3.40",
    "flat_white": "3.60",
    "mocha": "3.80",
    "hot_chocolate": "3.20",
    "espresso": "2.40",
}
UK_MENU: tuple[Product, ...] = tuple(
    dataclasses.replace(product, price=Decimal(UK_PRICES[product.product_id])) for product in MENU
)
# (value, weight) pairs: how often each choice is made.
LINES_PER_ORDER = ((1, 90), (2, 10))
QUANTITIES = ((1, 85), (2, 15))
SIZES = (("regular", 70), ("large", 30))
SUGAR_LEVELS = ((0, 50), (1, 30), (2, 20))
PAYMENT_METHODS = (("wechat", 55), ("alipay", 30), ("card", 10), ("corp", 3), ("cash", 2))
# London pays by card (contactless), a little by company account or cash; all protocol methods.
UK_PAYMENT_METHODS = (("card", 85), ("corp", 5), ("cash", 10))
PAYMENT_STATUSES = (("paid", 95), ("unpaid", 3), ("failed", 2))
# Cash has no provider, so no transaction id; a cash sale only happens once the coins are in.
TRANSACTION_PREFIXES = {"wechat": "wx", "alipay": "ali", "card": "card", "corp": "corp"}
LARGE_CUP_SCALE = 1.4
SUGAR_PER_LEVEL_G = 5
BREW_SECONDS_PER_CUP = 35.0

# Customers per hour of the shop's day, relative: a breakfast peak (7-9), lunch (12-13), an afternoon
# coffee (15-16), quiet nights that never quite stop (stations, hospitals). Normalised by its mean, so
# `sales_per_hour` is a machine's average over the day, and 24 x it is its daily sales.
# fmt: off
DAILY_SALES_CURVE: tuple[float, ...] = (
    # 0h   1h   2h   3h   4h   5h   6h   7h   8h   9h   10h  11h
    0.3, 0.2, 0.2, 0.2, 0.2, 0.3, 0.6, 2.0, 2.5, 1.8, 1.0, 1.1,
    # 12h  13h  14h  15h  16h  17h  18h  19h  20h  21h  22h  23h
    1.8, 1.6, 1.0, 1.4, 1.3, 0.9, 0.7, 0.6, 0.5, 0.4, 0.3, 0.3,
)
# fmt: on
FLAT_SALES_CURVE: tuple[float, ...] = (1.0,) * 24

T = TypeVar("T")


@dataclass(frozen=True)
class Region:
    """Where a fleet's shops are: the currency its orders are in, the clock its daily curve runs on,
    its factory menu and how its customers pay."""

    code: str
    currency: str
    shop_timezone: tzinfo
    menu: tuple[Product, ...]
    payment_methods: tuple[tuple[str, float], ...]


CHINA = Region("cn", CURRENCY, SHOP_TIMEZONE, MENU, PAYMENT_METHODS)
UK = Region("uk", "GBP", ZoneInfo("Europe/London"), UK_MENU, UK_PAYMENT_METHODS)
REGIONS = {region.code: region for region in (CHINA, UK)}


def weighted_choice(rng: random.Random, choices: Sequence[tuple[T, float]]) -> T:
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights=weights)[0]


def format_money(amount: Decimal) -> str:
    """The protocol's money: a decimal string with exactly two places ("18.00")."""
    return f"{amount.quantize(CENTS):.2f}"


def sales_rate_per_hour(
    local_time: datetime, sales_per_hour: float, curve: Sequence[float] = DAILY_SALES_CURVE
) -> float:
    """A machine's expected sales per hour at `local_time` (shop time): the base rate shaped by the curve."""
    mean = sum(curve) / len(curve)
    return sales_per_hour * curve[local_time.hour] / mean


def peak_sales_per_hour(sales_per_hour: float, curve: Sequence[float] = DAILY_SALES_CURVE) -> float:
    return sales_per_hour * max(curve) / (sum(curve) / len(curve))


def backlog_chunks(orders: Sequence[T], size: int = BACKLOG_LIMIT) -> list[list[T]]:
    """The backlog in upload order, in requests the server takes (at most `size` orders each)."""
    if size < 1:
        raise ValueError("a backlog chunk holds at least one order")
    return [list(orders[start : start + size]) for start in range(0, len(orders), size)]


def machine_order_id(serial: str, day: datetime, number: int) -> str:
    """`<serial>-<YYYYMMDD>-<NNNN>`: the number never repeats on a machine, so neither does the id."""
    return f"{serial}-{day:%Y%m%d}-{number:04d}"


@dataclass(frozen=True)
class SaleOrder:
    """A sale as the machine keeps it until the server has answered for it: the protocol body to send."""

    order_id: str
    total: Decimal
    body: dict[str, Any]

    def describe(self) -> str:
        items = ", ".join(f"{item['product_id']} x{item['qty']}" for item in self.body["items"])
        payment = self.body["payment"]
        return (
            f"{self.order_id} {items} {self.body['total']} {self.body['currency']} "
            f"{payment['method']}/{payment['status']}"
        )


class OrderNumbers:
    """Each machine's next order number, kept in a JSON file so a restarted fleet never reuses an order id.

    Reusing one would be a different order under a known id, which the server refuses (409). Numbers
    are reserved a block at a time (one write per `RESERVE_BLOCK` sales of a machine), so a killed
    simulator skips at most a block and never reuses a number; a clean stop writes the exact next
    number. Without a path the numbers only live as long as the process (tests, one-off runs).
    """

    RESERVE_BLOCK = 100

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path else None
        self._reserved: dict[str, int] = self._read()

    def first_free(self, serial: str) -> int:
        return self._reserved.get(serial, 1)

    def note_used(self, serial: str, next_free: int) -> None:
        """Called after each sale with the machine's next number; writes only when a block runs out."""
        if self.path is None or next_free <= self._reserved.get(serial, 1):
            return
        self._reserved[serial] = next_free + self.RESERVE_BLOCK
        self._write({serial: self._reserved[serial]}, exact=False)

    def continue_after(self, next_free: dict[str, int]) -> None:
        """The machines' numbers below these are taken (their history was written elsewhere): the fleet
        goes on from them, or from what the file already holds if that is higher."""
        for serial, number in next_free.items():
            self._reserved[serial] = max(number, self._reserved.get(serial, 1))
        if self.path is not None and next_free:
            self._write(next_free, exact=False)

    def settle(self, next_free: dict[str, int]) -> None:
        """A clean stop: remember exactly where each machine is, so its numbering goes on without a gap."""
        if self.path is not None and next_free:
            self._write(next_free, exact=True)

    def _read(self) -> dict[str, int]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            numbers = json.loads(self.path.read_text(encoding="utf-8"))["next_order_number"]
            if not all(isinstance(k, str) and type(v) is int and v >= 1 for k, v in numbers.items()):
                raise ValueError("numbers must be positive integers by serial")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise FleetConfigurationError(
                f"{self.path} is not a readable simulator state file: {error}"
            ) from error
        return numbers

    def _write(self, numbers: dict[str, int], *, exact: bool) -> None:
        """Merge into the file (another fleet may keep its serials there too) and replace it atomically."""
        if self.path is None:
            return
        stored = {} if not self.path.exists() else self._read()
        for serial, number in numbers.items():
            stored[serial] = number if exact else max(number, stored.get(serial, 1))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(
            json.dumps({"next_order_number": stored}, indent=1, sort_keys=True), encoding="utf-8"
        )
        os.replace(temporary, self.path)
