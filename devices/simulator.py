"""A fleet of simulated coffee machines that speaks machine protocol v1 over HTTP, and nothing else.

It imports no Django code on purpose: it is a stand-in for real machines, so it must be pointable at
any server (a dev box, staging, a test's live server) and must only know what a machine knows: the
base URL, the merchant's provisioning secret and the protocol. Each machine is an asyncio task that
registers, heartbeats at the interval the server asks for, reports refills, now and then drops
offline, and re-registers when its token is refused. Between heartbeats it sells drinks: a weighted
menu and payment mix, more customers at breakfast and lunch than at night. A sale goes up at once;
while the machine is offline it is buffered and the backlog goes up when the machine is back. A sale
without an answer is kept and sent again later (the server may have stored it: "duplicate"), and now
and then a machine re-sends an answered order on purpose (a lost reply), so duplicates really happen.
Later protocol features (commands, packages) are meant to be added as further small methods on
`SimulatedMachine` and steps of its tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import enum
import json
import logging
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
REGISTER_PATH = f"{API_PREFIX}/devices/register"

MACHINE_STATES = ("idle", "brewing", "cleaning", "maintenance", "fault")
DEFAULT_HEARTBEAT_INTERVAL_S = 30.0
MIN_SERVER_HEARTBEAT_INTERVAL_S = 1.0
DEFAULT_OFFLINE_PROBABILITY = 0.01
MAX_CONNECTIONS = 50
REQUEST_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = "coffeeshop-simulator/1"
FACTORY_PACKAGE_VERSION = "2026.1.0"
# How long run_fleet lets machines finish the call they are in once told to stop: an order whose
# request is cut off may be stored without the machine knowing, and then the books disagree.
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class BinSpec:
    """One material bin as built into a machine; the catalogue the server's demo data seeds from."""

    index: int
    material: str
    unit: str
    capacity: int


DEFAULT_BINS: tuple[BinSpec, ...] = (
    BinSpec(1, "BEAN-ARABICA", "g", 1000),
    BinSpec(2, "MILK-POWDER", "g", 800),
    BinSpec(3, "SUGAR", "g", 500),
    BinSpec(4, "CHOCOLATE", "g", 500),
    BinSpec(5, "WATER", "ml", 5000),
)

MACHINE_MODELS: tuple[tuple[str, str], ...] = (
    ("CM-2000", "1.4.2"),
    ("CM-3000", "2.1.0"),
    ("EspressoPro", "3.0.7"),
)
ALIAS_PLACES = ("Lobby", "Pantry", "Library", "Gym", "Cafeteria", "Reception", "Station", "Campus")
WIFI_NETWORKS = ("shop-5g", "shop-2g", "coffee-iot", "lobby-staff")

# What one drink takes out of the bins, by material code. A bin holding a material no recipe names
# still drains slowly (see UNLISTED_MATERIAL_SHARE) so custom catalogues show movement too.
DRINK_RECIPES: tuple[dict[str, float], ...] = (
    {"BEAN-ARABICA": 18, "WATER": 40},
    {"BEAN-ARABICA": 18, "WATER": 200},
    {"BEAN-ARABICA": 18, "MILK-POWDER": 12, "WATER": 180},
    {"BEAN-ARABICA": 18, "MILK-POWDER": 10, "CHOCOLATE": 20, "WATER": 180},
    {"MILK-POWDER": 15, "CHOCOLATE": 25, "WATER": 200},
)
SUGAR_MATERIAL = "SUGAR"
MAX_SUGAR_PER_DRINK_G = 10
UNLISTED_MATERIAL_SHARE = 0.01
RINSE_WATER_ML = 300


class ProtocolError(Exception):
    """A call did not get the answer the protocol promises; the machine logs it and carries on."""


class Unreachable(ProtocolError):
    """The server could not be reached (timeouts, connection errors, 5xx, throttling) after retries."""


class ProtocolViolation(ProtocolError):
    """The server answered outside the protocol (not the envelope, a field missing or mistyped)."""


class Rejected(ProtocolError):
    """The server refused the call with an error envelope; retrying the same call will not help."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class Unauthorized(Rejected):
    """401: the token was revoked or replaced; a machine answers by registering again."""


class FleetConfigurationError(ValueError):
    """`run_fleet` was called with arguments no fleet can run with."""


class MachineStopped(Exception):
    """The server refused this machine's registration for good (wrong secret, serial of another merchant)."""


class EventKind(enum.StrEnum):
    REGISTERED = "registered"
    REREGISTERED = "reregistered"
    REFUSED = "refused"
    OFFLINE = "offline"
    BACK = "back"
    REFILLED = "refilled"
    COMMANDS = "commands"
    SOLD = "sold"
    BACKLOG = "backlog"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    CONFLICT = "conflict"
    FAILED = "failed"
    CRASHED = "crashed"


@dataclass(frozen=True)
class FleetEvent:
    """Something an operator watching the simulation would want a line about."""

    kind: EventKind
    serial: str
    detail: str = ""


@dataclass(frozen=True)
class OrderRecord:
    """One order as the simulator books it: which machine, the machine's order id, the total."""

    serial: str
    order_id: str
    total: Decimal


@dataclass
class FleetStats:
    """Counters over one `run_fleet` call; `registered` counts machines, the rest count calls or periods.

    Order answers are counted per answer: an order re-sent after a lost reply counts once as accepted
    and once as duplicate. `delivered` lists each order the server confirmed having (its first answer
    was accepted or duplicate), once; `unsent` the orders still waiting in a machine when the fleet
    stopped. Together with the rejected ones they account for every order sold.
    """

    registered: int = 0
    heartbeats_sent: int = 0
    heartbeats_failed: int = 0
    reregistrations: int = 0
    material_reports_sent: int = 0
    offline_periods: int = 0
    machines_refused: int = 0
    machines_crashed: int = 0
    orders_sold: int = 0
    orders_accepted: int = 0
    orders_duplicate: int = 0
    orders_rejected: int = 0
    orders_conflict: int = 0
    orders_resent: int = 0
    order_uploads_failed: int = 0
    orders_buffered_max: int = 0
    backlogs_uploaded: int = 0
    orders_unsent: int = 0
    delivered: list[OrderRecord] = field(default_factory=list, repr=False)
    unsent: list[OrderRecord] = field(default_factory=list, repr=False)

    LEDGERS = frozenset({"delivered", "unsent"})

    def as_dict(self) -> dict[str, int]:
        """The counters only (the ledgers are lists of orders)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self.LEDGERS}

    @property
    def delivered_total(self) -> Decimal:
        return sum((record.total for record in self.delivered), Decimal("0.00"))


# --- Formats ---------------------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 with an offset, seconds precision, `Z` for UTC, as the protocol's examples write it."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("protocol timestamps need an offset; got a naive datetime")
    text = moment.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date); None when unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def fleet_serial(prefix: str, index: int) -> str:
    """Deterministic serials, so a restarted simulation re-registers the same machines (200, new token)."""
    return f"{prefix}-{index:06d}"


# --- Physics ---------------------------------------------------------------------------------------


@dataclass
class BoilerTemperature:
    """The boiler's temperature: a mean-reverting random walk around the setpoint, with rare excursions.

    Excursions model what an operator sees on real machines: a dip after a run of drinks or a cold
    water refill, a small overshoot when the heater cuts out late, and now and then a slow heater that
    sags far below the setpoint. The value never leaves [FLOOR_C, CEILING_C].
    """

    FLOOR_C = 15.0
    CEILING_C = 99.0
    REVERSION = 0.2
    NOISE_C = 0.3

    setpoint_c: float = 92.0
    current_c: float = 92.0
    _target_c: float = field(default=92.0, init=False, repr=False)
    _excursion_steps: int = field(default=0, init=False, repr=False)

    def step(self, rng: random.Random) -> float:
        if self._excursion_steps > 0:
            self._excursion_steps -= 1
        else:
            self._target_c = self.setpoint_c
            self._maybe_start_excursion(rng)
        self.current_c += self.REVERSION * (self._target_c - self.current_c) + rng.gauss(0.0, self.NOISE_C)
        self.current_c = min(self.CEILING_C, max(self.FLOOR_C, self.current_c))
        return self.current_c

    def _maybe_start_excursion(self, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.0005:
            self._start_excursion(rng.uniform(-30.0, -18.0), rng.randint(10, 30))
        elif roll < 0.0105:
            self._start_excursion(rng.uniform(-8.0, -4.0), rng.randint(3, 10))
        elif roll < 0.0155:
            self._start_excursion(rng.uniform(2.5, 4.5), rng.randint(2, 6))

    def _start_excursion(self, offset_c: float, steps: int) -> None:
        self._target_c = self.setpoint_c + offset_c
        self._excursion_steps = steps


@dataclass
class BinLevel:
    """A bin's fill level; `remaining` stays within [0, capacity] whatever is drawn or poured in."""

    NEAR_EMPTY_SHARE = 0.1

    spec: BinSpec
    remaining: float

    @property
    def is_near_empty(self) -> bool:
        return self.remaining <= self.spec.capacity * self.NEAR_EMPTY_SHARE

    def draw(self, amount: float) -> None:
        self.remaining = max(0.0, self.remaining - max(0.0, amount))

    def fill_to(self, level: float) -> None:
        self.remaining = min(float(self.spec.capacity), max(self.remaining, level))

    def as_protocol(self, refilled: bool | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "index": self.spec.index,
            "material": self.spec.material,
            "remaining": round(self.remaining),
            "capacity": self.spec.capacity,
            "unit": self.spec.unit,
        }
        if refilled is not None:
            body["refilled"] = refilled
        return body


# --- Sales -----------------------------------------------------------------------------------------

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
    """A drink on the machine's menu, with its share of sales (relative to the other drinks)."""

    product_id: str
    name: str
    price: Decimal
    weight: float
    recipe_version: str

    @property
    def materials(self) -> dict[str, float]:
        """What one regular cup takes from the bins, by material code."""
        return CUP_MATERIALS[self.product_id]


MENU: tuple[Product, ...] = (
    Product("americano", "Americano", Decimal("12.00"), 22, "2"),
    Product("latte", "Latte", Decimal("18.00"), 24, "3"),
    Product("cappuccino", "Cappuccino", Decimal("18.00"), 16, "2"),
    Product("flat_white", "Flat White", Decimal("20.00"), 9, "1"),
    Product("mocha", "Mocha", Decimal("22.00"), 7, "1"),
    Product("hot_chocolate", "Hot Chocolate", Decimal("15.00"), 8, "1"),
    Product("espresso", "Espresso", Decimal("10.00"), 14, "4"),
)
CUP_MATERIALS: dict[str, dict[str, float]] = {
    "americano": {"BEAN-ARABICA": 18, "WATER": 200},
    "latte": {"BEAN-ARABICA": 18, "MILK-POWDER": 12, "WATER": 180},
    "cappuccino": {"BEAN-ARABICA": 18, "MILK-POWDER": 10, "WATER": 150},
    "flat_white": {"BEAN-ARABICA": 20, "MILK-POWDER": 10, "WATER": 150},
    "mocha": {"BEAN-ARABICA": 18, "MILK-POWDER": 10, "CHOCOLATE": 20, "WATER": 180},
    "hot_chocolate": {"MILK-POWDER": 15, "CHOCOLATE": 25, "WATER": 200},
    "espresso": {"BEAN-ARABICA": 18, "WATER": 40},
}
MENU_BY_ID = {product.product_id: product for product in MENU}
# (value, weight) pairs: how often each choice is made.
LINES_PER_ORDER = ((1, 90), (2, 10))
QUANTITIES = ((1, 85), (2, 15))
SIZES = (("regular", 70), ("large", 30))
SUGAR_LEVELS = ((0, 50), (1, 30), (2, 20))
PAYMENT_METHODS = (("wechat", 55), ("alipay", 30), ("card", 10), ("corp", 3), ("cash", 2))
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


@dataclass(frozen=True)
class FleetSettings:
    """Knobs shared by every machine of a fleet."""

    heartbeat_interval_s: float | None = None
    offline_probability: float = DEFAULT_OFFLINE_PROBABILITY
    offline_intervals: tuple[float, float] = (3.0, 12.0)
    reboot_probability: float = 0.3
    max_start_jitter_s: float = 5.0
    sales_per_hour: float = DEFAULT_SALES_PER_HOUR
    sales_curve: tuple[float, ...] = DAILY_SALES_CURVE
    duplicate_probability: float = DEFAULT_DUPLICATE_PROBABILITY

    def sales_rate_per_hour(self, local_time: datetime) -> float:
        return sales_rate_per_hour(local_time, self.sales_per_hour, self.sales_curve)

    @property
    def peak_sales_per_hour(self) -> float:
        return peak_sales_per_hour(self.sales_per_hour, self.sales_curve)


# --- Transport -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    data: Any


Sleep = Callable[[float], Awaitable[None]]


class ProtocolClient:
    """HTTP calls in the protocol's envelope, shared by a fleet, with the retries a real machine does.

    Timeouts, connection drops, 502/503/504 and 429 are retried (429 after `Retry-After`), up to
    `attempts` tries with capped, jittered exponential backoff, then `Unreachable`. Error envelopes
    become `Rejected` (`Unauthorized` for 401) so a machine can decide; nothing else is caught.
    """

    RETRYABLE_STATUSES = frozenset({502, 503, 504})
    MAX_RETRY_AFTER_S = 300.0

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        attempts: int = 3,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ):
        self.client = client
        self.attempts = max(1, attempts)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def request(self, method: str, path: str, *, body: Any = None, token: str | None = None) -> Reply:
        headers = {"Authorization": f"Device {token}"} if token else {}
        failure = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.client.request(method, path, json=body, headers=headers)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
                failure = f"{type(error).__name__}: {error}"
                delay = self._backoff(attempt)
            else:
                if response.status_code == 429:
                    failure = "429 throttled"
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    delay = (
                        self._backoff(attempt)
                        if retry_after is None
                        else min(self.MAX_RETRY_AFTER_S, retry_after)
                    )
                elif response.status_code in self.RETRYABLE_STATUSES:
                    failure = f"{response.status_code} from server"
                    delay = self._backoff(attempt)
                else:
                    return _unwrap(response)
            if attempt < self.attempts:
                logger.debug("%s %s failed (%s), retrying in %.2fs", method, path, failure, delay)
                await self._sleep(delay)
        raise Unreachable(f"{method} {path}: {failure} after {self.attempts} attempts")

    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1)))


def _unwrap(response: httpx.Response) -> Reply:
    """The envelope's `data` on success; the error envelope as an exception otherwise."""
    try:
        envelope = response.json()
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("ok"), bool):
        if response.is_success:
            raise ProtocolViolation(f"{response.status_code} reply is not the protocol envelope")
        envelope = {"ok": False, "error": {"code": "UNKNOWN", "message": response.reason_phrase}}
    if envelope["ok"] and response.is_success:
        return Reply(response.status_code, envelope.get("data"))
    error = envelope.get("error") if isinstance(envelope.get("error"), dict) else {}
    code, message = str(error.get("code", "UNKNOWN")), str(error.get("message", ""))
    details = error.get("details") if isinstance(error.get("details"), dict) else None
    exception_class = Unauthorized if response.status_code == 401 else Rejected
    raise exception_class(response.status_code, code, message, details)


def _require(data: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    """A reply field the machine cannot work without, checked so a server slip is reported, not a crash."""
    if not isinstance(data, dict) or not isinstance(data.get(name), kind) or isinstance(data.get(name), bool):
        raise ProtocolViolation(f"reply field {name!r} missing or not {kind}")
    return data[name]


def _is_worth_retrying(error: Rejected) -> bool:
    """A new token (401) or a server in trouble (5xx) may take the call later; other refusals never will."""
    return isinstance(error, Unauthorized) or error.status >= 500


def _error_of(error: Rejected) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "details": error.details}


def _single_order_result(reply: Reply, order: SaleOrder) -> str:
    """A single order's answer: 201 accepted or 200 duplicate, for this order id; anything else is a slip."""
    result = _require(reply.data, "result", str)
    if reply.data.get("order_id") != order.order_id:
        raise ProtocolViolation(f"order reply names {reply.data.get('order_id')!r}, not {order.order_id!r}")
    if (reply.status, result) not in {(201, "accepted"), (200, "duplicate")}:
        raise ProtocolViolation(f"order reply {reply.status} with result {result!r}")
    return result


def _backlog_results(reply: Reply, orders: Sequence[SaleOrder]) -> list[dict[str, Any]]:
    """A backlog's answer: one entry per order, in order, each accepted, duplicate or rejected."""
    results = _require(reply.data, "results", list)
    if reply.status != 200 or len(results) != len(orders):
        raise ProtocolViolation(
            f"backlog of {len(orders)} answered {reply.status} with {len(results)} results"
        )
    for order, entry in zip(orders, results, strict=True):
        if not isinstance(entry, dict) or entry.get("result") not in {"accepted", "duplicate", "rejected"}:
            raise ProtocolViolation(
                f"backlog result for {order.order_id} is not a protocol result: {entry!r}"
            )
        if entry.get("order_id") != order.order_id:
            raise ProtocolViolation(
                f"backlog results out of order: {entry.get('order_id')!r} for {order.order_id!r}"
            )
    return results


# --- Fleet plumbing --------------------------------------------------------------------------------

EventSink = Callable[[FleetEvent], None]


class FleetStopping(Exception):
    """The fleet is stopping: the machine leaves its life loop at the next quiet moment."""


@dataclass
class FleetSession:
    """What every machine of one fleet run shares: the client, the secret, the knobs and the counters.

    `stopping` asks the machines to finish the call they are in and stop; they wait with `pause`,
    which returns early (True) once it is set.
    """

    api: ProtocolClient
    provisioning_secret: str
    settings: FleetSettings = field(default_factory=FleetSettings)
    stats: FleetStats = field(default_factory=FleetStats)
    on_event: EventSink | None = None
    order_numbers: OrderNumbers = field(default_factory=OrderNumbers)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, kind: EventKind, serial: str, detail: str = "") -> None:
        logger.info("%s %s %s", serial, kind, detail)
        if self.on_event is not None:
            self.on_event(FleetEvent(kind, serial, detail))

    async def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the fleet is stopping (then sooner)."""
        if seconds > 0 and not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), seconds)
        return self.stopping.is_set()


# --- The machine -----------------------------------------------------------------------------------


class SimulatedMachine:
    """One machine: its simulated physics (pure, steppable in tests) and its protocol calls.

    The life loop is `run`: register, then per tick maybe drop offline, `step` the physics, upload
    waiting orders, report refills, heartbeat, then `trade` until the next tick: customers arrive at
    the daily curve's rate and each sale goes up at once. Each protocol call is one small method so
    later features (commands) slot in as further methods called from `tick`.

    Orders: a sale joins `outbox` and leaves it only when the server has answered for it (accepted,
    duplicate or rejected). Offline, sales wait there; a sale whose call failed stays there; whatever
    waits goes up as a backlog, oldest first, at the next tick (or the next sale).
    """

    def __init__(
        self,
        serial: str,
        model: str,
        firmware: str,
        alias: str,
        *,
        bins: Sequence[BinSpec] = DEFAULT_BINS,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.serial = serial
        self.model = model
        self.firmware = firmware
        self.alias = alias
        self.rng = rng or random.Random()
        self._clock = clock
        self.bins = [BinLevel(spec, spec.capacity * self.rng.uniform(0.4, 1.0)) for spec in bins]
        self.temperature = BoilerTemperature()
        self.state = "idle"
        self.ip = f"10.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(2, 254)}"
        self.wifi_ssid = self.rng.choice(WIFI_NETWORKS)
        self.rssi_dbm = self.rng.randint(-75, -45)
        self.package_version = FACTORY_PACKAGE_VERSION
        # A real fleet has been running for a while and its clocks drift; some report local China time.
        self._uptime_at_boot_s = self.rng.randint(600, 30 * 86400)
        self._booted_at = clock()
        self.clock_skew = timedelta(seconds=self.rng.uniform(-20.0, 20.0))
        self.tz = self.rng.choice((UTC, timezone(timedelta(hours=8))))
        self.device_id: str | None = None
        self.token: str | None = None
        self.server_interval_s = DEFAULT_HEARTBEAT_INTERVAL_S
        self.desired_package: dict[str, Any] | None = None
        self.unreported_refills: set[int] = set()
        self.next_order_number = 1
        self.outbox: list[SaleOrder] = []
        self.is_offline = False
        self.brewing_until = -math.inf
        self._next_customer_at: float | None = None

    # Physics ---------------------------------------------------------------------------------------

    def step(self) -> list[int]:
        """Advance one tick of the machine's life; returns the indexes of bins refilled during it."""
        self.temperature.step(self.rng)
        self.rssi_dbm = min(-35, max(-90, self.rssi_dbm + self.rng.randint(-2, 2)))
        self.state = self.rng.choices(("idle", "brewing", "cleaning"), weights=(82, 15, 3))[0]
        if self.state == "brewing" or self.rng.random() < 0.25:
            self._make_drink()
        if self.state == "cleaning":
            self._draw("WATER", RINSE_WATER_ML)
        return self._refill_near_empty_bins()

    def _make_drink(self) -> None:
        recipe = self.rng.choice(DRINK_RECIPES)
        for level in self.bins:
            material = level.spec.material
            if material in recipe:
                amount = recipe[material]
            elif material == SUGAR_MATERIAL:
                amount = self.rng.choice((0, 0, 5, MAX_SUGAR_PER_DRINK_G))
            elif not any(material in known for known in DRINK_RECIPES):
                amount = level.spec.capacity * UNLISTED_MATERIAL_SHARE
            else:
                continue
            level.draw(amount * self.rng.uniform(0.9, 1.1))

    def _draw(self, material: str, amount: float) -> None:
        for level in self.bins:
            if level.spec.material == material:
                level.draw(amount)

    def _refill_near_empty_bins(self) -> list[int]:
        """Staff notice a near-empty bin only some of the time, so levels sometimes run lower first."""
        refilled = []
        for level in self.bins:
            if level.is_near_empty and self.rng.random() < 0.5:
                level.fill_to(level.spec.capacity * self.rng.uniform(0.85, 1.0))
                refilled.append(level.spec.index)
        return refilled

    @property
    def uptime_s(self) -> int:
        return self._uptime_at_boot_s + int(self._clock() - self._booted_at)

    def reboot(self) -> None:
        self._uptime_at_boot_s = 0
        self._booted_at = self._clock()
        self.state = "idle"

    def machine_time(self) -> datetime:
        """The machine's own clock: skewed, and in its own zone, as real machines send it."""
        return (datetime.now(UTC) + self.clock_skew).astimezone(self.tz)

    @property
    def reported_state(self) -> str:
        """What the machine says it is doing: brewing while a sold drink is being made."""
        return "brewing" if self._clock() < self.brewing_until else self.state

    # Sales (pure) ----------------------------------------------------------------------------------

    def make_order(self, now: datetime | None = None) -> SaleOrder:
        """The next sale, numbered, priced and timed on the machine's clock, as the protocol's order body."""
        moment = now or self.machine_time()
        number, self.next_order_number = self.next_order_number, self.next_order_number + 1
        lines = []
        for _ in range(weighted_choice(self.rng, LINES_PER_ORDER)):
            product = self.rng.choices(MENU, weights=[product.weight for product in MENU])[0]
            lines.append((product, weighted_choice(self.rng, QUANTITIES)))
        total = sum((product.price * qty for product, qty in lines), Decimal("0.00"))
        order_id = machine_order_id(self.serial, moment, number)
        body = {
            "order_id": order_id,
            "created_at": format_timestamp(moment),
            "currency": CURRENCY,
            "total": format_money(total),
            "payment": self._payment(),
            "items": [
                {
                    "product_id": product.product_id,
                    "name": product.name,
                    "qty": qty,
                    "unit_price": format_money(product.price),
                    "recipe_version": product.recipe_version,
                    "options": {
                        "size": weighted_choice(self.rng, SIZES),
                        "sugar": weighted_choice(self.rng, SUGAR_LEVELS),
                    },
                }
                for product, qty in lines
            ],
            "is_test": False,
        }
        return SaleOrder(order_id, total, body)

    def _payment(self) -> dict[str, str]:
        method = weighted_choice(self.rng, PAYMENT_METHODS)
        status = "paid" if method == "cash" else weighted_choice(self.rng, PAYMENT_STATUSES)
        payment = {"method": method, "status": status}
        if status == "paid" and method in TRANSACTION_PREFIXES:
            payment["transaction_id"] = f"{TRANSACTION_PREFIXES[method]}-{self.rng.randrange(10**9, 10**10)}"
        return payment

    def brew(self, order: SaleOrder) -> None:
        """Make the order's drinks: the bins drain and the machine reports `brewing` meanwhile."""
        cups = 0
        for item in order.body["items"]:
            product = MENU_BY_ID.get(item["product_id"])
            if product is None:
                continue
            scale = LARGE_CUP_SCALE if item["options"].get("size") == "large" else 1.0
            for _ in range(item["qty"]):
                cups += 1
                for material, amount in product.materials.items():
                    self._draw(material, amount * scale * self.rng.uniform(0.95, 1.05))
                self._draw(SUGAR_MATERIAL, SUGAR_PER_LEVEL_G * item["options"].get("sugar", 0))
        self.brewing_until = max(self._clock(), self.brewing_until) + BREW_SECONDS_PER_CUP * cups

    # Protocol bodies (pure) ------------------------------------------------------------------------

    def registration_body(self, provisioning_secret: str) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "model": self.model,
            "firmware": self.firmware,
            "provisioning_secret": provisioning_secret,
            "alias": self.alias,
        }

    def heartbeat_body(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "state": self.reported_state,
            "temperature_c": round(self.temperature.current_c, 1),
            "ip": self.ip,
            "wifi": {"ssid": self.wifi_ssid, "rssi_dbm": self.rssi_dbm},
            "firmware": self.firmware,
            "uptime_s": self.uptime_s,
            "package_version": self.package_version,
            "sent_at": format_timestamp(now or self.machine_time()),
            "bins": [level.as_protocol() for level in self.bins],
        }

    def materials_body(self, refilled: set[int], now: datetime | None = None) -> dict[str, Any]:
        """The refilled bins only, flagged, so the server books exactly those refills."""
        return {
            "sent_at": format_timestamp(now or self.machine_time()),
            "bins": [level.as_protocol(refilled=True) for level in self.bins if level.spec.index in refilled],
        }

    # Protocol calls --------------------------------------------------------------------------------

    def path(self, suffix: str) -> str:
        if self.device_id is None:
            raise RuntimeError(f"{self.serial} has no device_id: register first")
        return f"{API_PREFIX}/devices/{quote(self.device_id, safe='')}/{suffix}"

    def interval_s(self, session: FleetSession) -> float:
        return session.settings.heartbeat_interval_s or self.server_interval_s

    async def register(self, session: FleetSession) -> Reply:
        """One registration call; keeps the new device_id and token (a known serial gets a new token)."""
        reply = await session.api.request(
            "POST", REGISTER_PATH, body=self.registration_body(session.provisioning_secret)
        )
        self.device_id = _require(reply.data, "device_id", str)
        self.token = _require(reply.data, "token", str)
        self._adopt_interval(reply.data)
        return reply

    async def heartbeat(self, session: FleetSession) -> None:
        try:
            reply = await session.api.request(
                "POST", self.path("status"), body=self.heartbeat_body(), token=self.token
            )
        except ProtocolError:
            session.stats.heartbeats_failed += 1
            raise
        session.stats.heartbeats_sent += 1
        self._adopt_heartbeat_reply(session, reply.data)

    async def report_materials(self, session: FleetSession) -> None:
        """Report pending refills; they stay pending through outages but a refusal drops them."""
        refilled = set(self.unreported_refills)
        try:
            await session.api.request(
                "POST", self.path("materials/report"), body=self.materials_body(refilled), token=self.token
            )
        except Rejected as error:
            if not isinstance(error, Unauthorized):
                self.unreported_refills -= refilled
            raise
        self.unreported_refills -= refilled
        session.stats.material_reports_sent += 1
        session.emit(EventKind.REFILLED, self.serial, "bins " + ", ".join(map(str, sorted(refilled))))

    async def sell(self, session: FleetSession) -> SaleOrder:
        """A customer buys: make the order, brew it, and send it now, or keep it while offline."""
        order = self.make_order()
        session.order_numbers.note_used(self.serial, self.next_order_number)
        session.stats.orders_sold += 1
        self.brew(order)
        self.outbox.append(order)
        if self.is_offline:
            self._note_waiting(session)
            session.emit(
                EventKind.SOLD, self.serial, f"{order.describe()} (offline: {len(self.outbox)} waiting)"
            )
            return order
        session.emit(EventKind.SOLD, self.serial, order.describe())
        # Older orders still waiting go first, with this one, so the server hears them in the order sold.
        await self._attempt(session, self.send_order if len(self.outbox) == 1 else self.upload_backlog)
        return order

    async def send_order(self, session: FleetSession) -> None:
        """Send the one waiting order on its own (a fresh sale); without an answer it stays waiting."""
        (order,) = self.outbox
        try:
            reply = await self._post_orders(session, order.body)
            result = _single_order_result(reply, order)
        except Rejected as error:
            if _is_worth_retrying(error):
                self._keep_for_later(session)
                raise
            self.outbox.remove(order)
            self._refused(session, order, _error_of(error))
            return
        except ProtocolError:
            self._keep_for_later(session)
            raise
        self.outbox.remove(order)
        self._answered(session, order, result)
        if self.rng.random() < session.settings.duplicate_probability:
            await self._resend([order], session, as_backlog=False)

    async def upload_backlog(self, session: FleetSession) -> None:
        """Upload every waiting order, oldest first, in chunks the server takes; stop at the first failure."""
        for chunk in backlog_chunks(list(self.outbox)):
            try:
                results = _backlog_results(
                    await self._post_orders(session, {"orders": [o.body for o in chunk]}), chunk
                )
            except Rejected as error:
                if _is_worth_retrying(error):
                    self._keep_for_later(session)
                    raise
                # The whole request was refused (a server with a smaller limit, say): say so, don't loop.
                results = [{"result": "rejected", "error": _error_of(error)}] * len(chunk)
            except ProtocolError:
                self._keep_for_later(session)
                raise
            del self.outbox[: len(chunk)]
            session.stats.backlogs_uploaded += 1
            answered = []
            for order, entry in zip(chunk, results, strict=True):
                if entry["result"] == "rejected":
                    self._refused(session, order, entry.get("error") or {})
                else:
                    self._answered(session, order, entry["result"])
                    answered.append(order)
            tally = ", ".join(
                f"{sum(1 for e in results if e['result'] == kind)} {kind}"
                for kind in ("accepted", "duplicate", "rejected")
            )
            session.emit(EventKind.BACKLOG, self.serial, f"{len(chunk)} orders uploaded: {tally}")
            if answered and self.rng.random() < session.settings.duplicate_probability:
                await self._resend(answered, session, as_backlog=True)

    async def _post_orders(self, session: FleetSession, body: dict[str, Any]) -> Reply:
        return await session.api.request("POST", self.path("orders/create"), body=body, token=self.token)

    async def _resend(self, orders: list[SaleOrder], session: FleetSession, *, as_backlog: bool) -> None:
        """A lost reply: the machine never heard the answer, so it sends the same orders again."""
        session.stats.orders_resent += len(orders)
        try:
            if as_backlog:
                reply = await self._post_orders(session, {"orders": [order.body for order in orders]})
                entries = _backlog_results(reply, orders)
            else:
                reply = await self._post_orders(session, orders[0].body)
                entries = [{"result": _single_order_result(reply, orders[0])}]
        except Rejected as error:
            if _is_worth_retrying(error):
                logger.warning(
                    "%s: re-sending %d answered orders failed: %s", self.serial, len(orders), error
                )
                return
            entries = [{"result": "rejected", "error": _error_of(error)}] * len(orders)
        except ProtocolError as error:
            # Nothing is lost: the server answered for these orders before.
            logger.warning("%s: re-sending %d answered orders failed: %s", self.serial, len(orders), error)
            return
        for order, entry in zip(orders, entries, strict=True):
            if entry["result"] == "duplicate":
                session.stats.orders_duplicate += 1
                session.emit(EventKind.DUPLICATE, self.serial, f"{order.order_id} re-sent after a lost reply")
            elif entry["result"] == "accepted":
                session.stats.orders_accepted += 1
                logger.error(
                    "%s: order %s was accepted a second time: the server had lost it",
                    self.serial,
                    order.order_id,
                )
            else:
                self._refused(session, order, entry.get("error") or {})

    def _answered(self, session: FleetSession, order: SaleOrder, result: str) -> None:
        """The server has the order (first answer): book it as delivered, once."""
        if result == "accepted":
            session.stats.orders_accepted += 1
        else:
            session.stats.orders_duplicate += 1
        session.stats.delivered.append(OrderRecord(self.serial, order.order_id, order.total))

    def _refused(self, session: FleetSession, order: SaleOrder, error: dict[str, Any]) -> None:
        """A refused order is dropped, never retried forever: sending it again would be refused again."""
        code, message = error.get("code", "UNKNOWN"), error.get("message", "")
        if code == "CONFLICT":
            # A correct machine never reuses an order id for other content: this is a simulator bug.
            session.stats.orders_conflict += 1
            logger.error(
                "%s: order %s got a conflict (409): %s %s",
                self.serial,
                order.order_id,
                message,
                error.get("details") or "",
            )
            session.emit(EventKind.CONFLICT, self.serial, f"{order.order_id}: {message}")
            return
        session.stats.orders_rejected += 1
        logger.warning(
            "%s: order %s rejected and dropped: %s %s %s",
            self.serial,
            order.order_id,
            code,
            message,
            error.get("details") or "",
        )
        session.emit(EventKind.REJECTED, self.serial, f"{order.order_id}: {code} {message}")

    def _keep_for_later(self, session: FleetSession) -> None:
        """An upload got no usable answer: its orders stay waiting (the server may have them: duplicates)."""
        session.stats.order_uploads_failed += 1
        self._note_waiting(session)

    def _note_waiting(self, session: FleetSession) -> None:
        session.stats.orders_buffered_max = max(session.stats.orders_buffered_max, len(self.outbox))

    def _adopt_interval(self, data: dict[str, Any]) -> None:
        interval = data.get("heartbeat_interval_s")
        if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
            self.server_interval_s = max(MIN_SERVER_HEARTBEAT_INTERVAL_S, float(interval))

    def _adopt_heartbeat_reply(self, session: FleetSession, data: Any) -> None:
        if not isinstance(data, dict):
            raise ProtocolViolation("heartbeat reply data is not an object")
        self._adopt_interval(data)
        commands = data.get("commands") or []
        package = data.get("desired_package")
        if not isinstance(commands, list) or not isinstance(package, dict | None):
            raise ProtocolViolation("heartbeat reply: commands not a list or desired_package not an object")
        self.desired_package = package
        if commands:
            # Executing commands is a later feature; say they arrived so a demo shows the lease happened.
            session.emit(EventKind.COMMANDS, self.serial, f"{len(commands)} received, not executed")

    # Life loop -------------------------------------------------------------------------------------

    async def run(self, session: FleetSession) -> None:
        """Live until the fleet stops (or is cancelled), or the server refuses this machine for good."""
        jitter = min(session.settings.max_start_jitter_s, self.interval_s(session))
        if await session.pause(self.rng.uniform(0.0, jitter)):
            return
        try:
            reply = await self.register_until_accepted(session)
            session.stats.registered += 1
            known = "known serial" if reply.status == 200 else "new"
            session.emit(EventKind.REGISTERED, self.serial, f"device {self.device_id} ({known})")
            while not session.stopping.is_set():
                if self.rng.random() < session.settings.offline_probability:
                    await self.stay_offline(session)
                    if session.stopping.is_set():
                        break
                await self.tick(session)
                await self.trade(session, self.interval_s(session) * self.rng.uniform(0.95, 1.05))
        except MachineStopped as error:
            session.stats.machines_refused += 1
            session.emit(EventKind.REFUSED, self.serial, str(error))
        except FleetStopping:
            pass

    async def tick(self, session: FleetSession) -> None:
        self.unreported_refills.update(self.step())
        if self.outbox:
            await self._attempt(session, self.upload_backlog)
        if self.unreported_refills:
            await self._attempt(session, self.report_materials)
        await self._attempt(session, self.heartbeat)

    async def trade(self, session: FleetSession, duration_s: float) -> None:
        """Spend `duration_s` serving customers, who come as a Poisson process following the daily curve.

        Arrivals are drawn at the curve's peak rate and each is kept with probability rate(now) / peak
        (thinning), so the rate follows the hour even across long quiet spells.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        peak = session.settings.peak_sales_per_hour
        while not session.stopping.is_set():
            if peak <= 0:
                await session.pause(end - loop.time())
                return
            if self._next_customer_at is None:
                self._next_customer_at = loop.time() + self.rng.expovariate(peak / 3600.0)
            if self._next_customer_at > end:
                await session.pause(end - loop.time())
                return
            if await session.pause(self._next_customer_at - loop.time()):
                return
            self._next_customer_at = None
            shop_time = self.machine_time().astimezone(SHOP_TIMEZONE)
            if self.rng.random() * peak < session.settings.sales_rate_per_hour(shop_time):
                await self.sell(session)

    async def _attempt(self, session: FleetSession, call: Callable[[FleetSession], Awaitable[None]]) -> None:
        """Run one protocol call the way a machine does: re-register on 401, note failures, carry on."""
        try:
            await call(session)
        except Unauthorized:
            await self.register_until_accepted(session)
            session.stats.reregistrations += 1
            session.emit(EventKind.REREGISTERED, self.serial, f"device {self.device_id}")
        except ProtocolError as error:
            logger.warning("%s: %s failed: %s", self.serial, call.__name__, error)
            session.emit(EventKind.FAILED, self.serial, f"{call.__name__}: {error}")

    async def register_until_accepted(self, session: FleetSession) -> Reply:
        """Register, retrying with backoff while the server is unreachable; a refusal stops the machine."""
        base_delay = min(5.0, self.interval_s(session))
        attempt = 0
        while True:
            try:
                return await self.register(session)
            except Rejected as error:
                if error.status < 500:
                    raise MachineStopped(str(error)) from error
                failure: ProtocolError = error
            except (Unreachable, ProtocolViolation) as error:
                failure = error
            delay = min(60.0, base_delay * 2 ** min(attempt, 6)) * self.rng.uniform(0.5, 1.0)
            attempt += 1
            logger.warning("%s: registration failed (%s), retrying in %.1fs", self.serial, failure, delay)
            if await session.pause(delay):
                raise FleetStopping

    async def stay_offline(self, session: FleetSession) -> None:
        """Go silent for a while (network loss or power cut), still selling: the sales wait in `outbox`.

        The machine keeps living meanwhile; its waiting orders go up as a backlog at the next tick.
        """
        interval = self.interval_s(session)
        low, high = session.settings.offline_intervals
        duration = self.rng.uniform(low, high) * interval
        session.stats.offline_periods += 1
        session.emit(EventKind.OFFLINE, self.serial, f"for {duration:.1f}s")
        self.is_offline = True
        try:
            await self.trade(session, duration)
        finally:
            self.is_offline = False
        if session.stopping.is_set():
            return
        for _ in range(min(int(duration / interval), 500)):
            self.unreported_refills.update(self.step())
        rebooted = self.rng.random() < session.settings.reboot_probability
        if rebooted:
            self.reboot()
        waiting = f"{len(self.outbox)} orders waiting" if self.outbox else ""
        session.emit(
            EventKind.BACK,
            self.serial,
            ", ".join(filter(None, ["after a reboot" if rebooted else "", waiting])),
        )


def build_fleet(devices: int, serial_prefix: str = "SIM", seed: int | None = None) -> list[SimulatedMachine]:
    """The same prefix and seed give the same machines (serials, models, aliases, starting levels)."""
    machines = []
    for index in range(1, devices + 1):
        serial = fleet_serial(serial_prefix, index)
        model, firmware = MACHINE_MODELS[(index - 1) % len(MACHINE_MODELS)]
        alias = f"{ALIAS_PLACES[(index - 1) % len(ALIAS_PLACES)]} {(index - 1) // len(ALIAS_PLACES) + 1}"
        rng = random.Random(f"{seed}:{serial}") if seed is not None else random.Random()
        machines.append(SimulatedMachine(serial, model, firmware, alias, rng=rng))
    return machines


async def _supervise(machine: SimulatedMachine, session: FleetSession) -> None:
    """One machine's bug must not take the fleet down, but it must be seen: log it with its traceback."""
    try:
        await machine.run(session)
    except Exception:
        logger.exception("%s crashed; the rest of the fleet carries on", machine.serial)
        session.stats.machines_crashed += 1
        session.emit(EventKind.CRASHED, machine.serial, "see the log for the traceback")


def _validate_fleet_arguments(
    base_url: str,
    devices: int,
    duration_s: float | None,
    heartbeat_interval_s: float | None,
    offline_probability: float,
    serial_prefix: str,
    settings: FleetSettings,
) -> None:
    try:
        scheme = httpx.URL(base_url).scheme
    except httpx.InvalidURL as error:
        raise FleetConfigurationError(f"base_url is not a URL: {error}") from error
    if scheme not in {"http", "https"}:
        raise FleetConfigurationError(f"base_url must be an http(s) URL, got {base_url!r}")
    if devices < 0:
        raise FleetConfigurationError("devices must not be negative")
    if duration_s is not None and duration_s <= 0:
        raise FleetConfigurationError("duration_s must be positive")
    if heartbeat_interval_s is not None and heartbeat_interval_s <= 0:
        raise FleetConfigurationError("heartbeat_interval_s must be positive")
    if not 0.0 <= offline_probability <= 1.0:
        raise FleetConfigurationError("offline_probability must be between 0 and 1")
    if not serial_prefix:
        raise FleetConfigurationError("serial_prefix must not be empty")
    low, high = settings.offline_intervals
    if not 0.0 <= low <= high:
        raise FleetConfigurationError("offline_intervals must be (low, high) with 0 <= low <= high")
    if not (math.isfinite(settings.sales_per_hour) and settings.sales_per_hour >= 0):
        raise FleetConfigurationError("sales_per_hour must be a number of at least 0")
    if not 0.0 <= settings.duplicate_probability <= 1.0:
        raise FleetConfigurationError("duplicate_probability must be between 0 and 1")
    curve = settings.sales_curve
    if len(curve) != 24 or not all(math.isfinite(v) and v >= 0 for v in curve) or not sum(curve) > 0:
        raise FleetConfigurationError("sales_curve must be 24 hourly weights, not negative, not all zero")
    if settings.sales_per_hour > 0 and len(serial_prefix) > MAX_SERIAL_PREFIX_FOR_SALES:
        raise FleetConfigurationError(
            f"serial_prefix is too long for order ids (at most {MAX_SERIAL_PREFIX_FOR_SALES} characters)"
        )


async def run_fleet(
    base_url: str,
    provisioning_secret: str,
    devices: int,
    duration_s: float | None = None,
    heartbeat_interval_s: float | None = None,
    offline_probability: float = DEFAULT_OFFLINE_PROBABILITY,
    serial_prefix: str = "SIM",
    seed: int | None = None,
    on_event: EventSink | None = None,
    *,
    stop: asyncio.Event | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sales_per_hour: float = DEFAULT_SALES_PER_HOUR,
    sales_curve: Sequence[float] = DAILY_SALES_CURVE,
    duplicate_probability: float = DEFAULT_DUPLICATE_PROBABILITY,
    offline_intervals: tuple[float, float] = FleetSettings.offline_intervals,
    state_file: str | os.PathLike[str] | None = None,
) -> FleetStats:
    """Run `devices` machines concurrently until `duration_s` passes, `stop` is set or all have stopped.

    `heartbeat_interval_s` overrides the server's interval (fast demos and tests); `offline_probability`
    is the chance per tick that a machine drops offline, for `offline_intervals` (low, high) heartbeat
    intervals. Each machine sells `sales_per_hour` drinks on average over the day, shaped by
    `sales_curve` (24 hourly weights, shop time; `FLAT_SALES_CURVE` for a steady rate); 0 sells nothing.
    `duplicate_probability` is the chance that a machine re-sends an answered order (a lost reply).
    `state_file` keeps each machine's order counter across runs, so a restarted fleet never reuses an
    order id; without it the counters start at 1. `transport` lets tests run the fleet against an
    in-process fake.

    On the end, machines finish the call they are in (up to STOP_GRACE_S) so no answered order goes
    unbooked. Returns the counters with the ledgers of orders delivered and orders still unsent;
    cancelling the call stops the machines at once.
    """
    session_settings = FleetSettings(
        heartbeat_interval_s=heartbeat_interval_s,
        offline_probability=offline_probability,
        offline_intervals=(float(offline_intervals[0]), float(offline_intervals[1])),
        sales_per_hour=float(sales_per_hour),
        sales_curve=tuple(float(v) for v in sales_curve),
        duplicate_probability=duplicate_probability,
    )
    _validate_fleet_arguments(
        base_url,
        devices,
        duration_s,
        heartbeat_interval_s,
        offline_probability,
        serial_prefix,
        session_settings,
    )
    order_numbers = OrderNumbers(state_file)
    machines = build_fleet(devices, serial_prefix, seed)
    for machine in machines:
        machine.next_order_number = order_numbers.first_free(machine.serial)
    connections = max(1, min(devices, MAX_CONNECTIONS))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=base_url,
        limits=limits,
        timeout=REQUEST_TIMEOUT,
        transport=transport,
        headers={"User-Agent": USER_AGENT},
    ) as client:
        session = FleetSession(
            ProtocolClient(client, rng=random.Random(seed)),
            provisioning_secret,
            session_settings,
            FleetStats(),
            on_event,
            order_numbers,
        )
        tasks = [
            asyncio.create_task(_supervise(machine, session), name=machine.serial) for machine in machines
        ]
        try:
            await _wait_for_end(tasks, duration_s, stop)
            session.stopping.set()
            if tasks:
                await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        finally:
            session.stopping.set()
            for task in tasks:
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            order_numbers.settle({machine.serial: machine.next_order_number for machine in machines})
    for task, outcome in zip(tasks, outcomes, strict=True):
        if isinstance(outcome, Exception):
            # Only reachable when reporting a crash failed too (a broken on_event); never drop it silently.
            logger.error("%s ended with an unhandled error", task.get_name(), exc_info=outcome)
    stats = session.stats
    stats.unsent = [
        OrderRecord(m.serial, order.order_id, order.total) for m in machines for order in m.outbox
    ]
    stats.orders_unsent = len(stats.unsent)
    return stats


async def _wait_for_end(
    tasks: list[asyncio.Task[None]], duration_s: float | None, stop: asyncio.Event | None
) -> None:
    """Return when every machine has stopped, `duration_s` has passed or `stop` is set, whichever first."""
    if not tasks:
        return
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(asyncio.wait(tasks))]
    if stop is not None:
        waiters.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waiters, timeout=duration_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
