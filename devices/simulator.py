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

Commands: each machine collects them by one channel (`CommandChannel`): only in its heartbeat replies,
by pulling `commands/pending` every few seconds, or over its WebSocket (`/ws/devices/{id}/`, held
open and reconnected with backoff). Whatever the channel, commands in a heartbeat reply are carried
out too (the server leased them to the machine), and results always go up over HTTP: `accepted`,
then `succeeded`/`failed` (`rejected` or `busy` when the machine will not or cannot start). The
machine carries out one command at a time, for real: a remote test brew drains the bins and shows
`brewing` but sells nothing, a restart goes silent and resets the uptime, a locked machine refuses
to brew. A command id it has already carried out is never carried out again: a redelivery (the
result was lost) gets the stored final result re-reported.

Misbehaviour (`Misbehaviour`), given to some machines on purpose so that every alarm the back office
raises can be seen: failing or ignoring commands, going silent for longer than the offline timeout,
overheating, and running a bin dry. The episodic ones come and go on a schedule (`EpisodeTiming`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import enum
import hashlib
import json
import logging
import math
import os
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import WebSocketException

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


# --- Commands and misbehaviour: the vocabulary ------------------------------------------------------


class CommandChannel(enum.StrEnum):
    """How a machine collects its commands (protocol: Commands); results always go up over HTTP."""

    HEARTBEAT = "heartbeat"  # only in the replies to its heartbeats
    PULL = "pull"  # GET commands/pending every pull interval, and just before each heartbeat
    WEBSOCKET = "websocket"  # pushed over /ws/devices/{id}/, held open and reconnected with backoff


MIXED_CHANNELS = "mixed"
DEFAULT_PULL_INTERVAL_S = 5.0
SOCKET_BACKOFF_BASE_S = 1.0
SOCKET_BACKOFF_CAP_S = 30.0
# A socket that stayed open this long was healthy: the next reconnection starts from the shortest delay.
SOCKET_STABLE_S = 10.0
# Every command id a machine has carried out is remembered (a redelivery is never carried out twice),
# up to this many; real machines keep such a log on flash.
REMEMBERED_COMMANDS = 1000


class Misbehaviour(enum.StrEnum):
    """What a machine can be told to do wrong, and the alarm each one makes the back office raise."""

    FAIL_COMMANDS = "fail_commands"  # reports every command failed: command_failed / upgrade_failed
    IGNORE_COMMANDS = "ignore_commands"  # never reports: retried, then timed out: command_failed
    GO_SILENT = "go_silent"  # stops calling for longer than the offline timeout: offline
    OVERHEAT = "overheat"  # the boiler climbs above 100 °C, then recovers: temperature_out_of_range
    RUN_DRY = "run_dry"  # one bin runs low, then empty, and is refilled later: material_low / _empty


@dataclass(frozen=True)
class EpisodeTiming:
    """When an episodic misbehaviour strikes, in seconds: first `first_after_s` after the machine is
    told to misbehave, for `lasts_s`, then again `every_s` after the last one ended. Each a (low, high)
    range drawn from anew every time."""

    first_after_s: tuple[float, float]
    lasts_s: tuple[float, float]
    every_s: tuple[float, float]


@dataclass(frozen=True)
class CommandOutcome:
    """How a command ended on the machine, as it reports it: `status` is a protocol result status
    (`succeeded`, `failed`, `rejected`, `busy`), or `ignored` for a command it never answers."""

    status: str
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def is_final(self) -> bool:
        return self.status in {"succeeded", "failed", "rejected"}

    def as_protocol(self, finished_at: str) -> dict[str, Any]:
        """The result call's body; only a final result carries `finished_at`."""
        body: dict[str, Any] = {"status": self.status, "result": self.result}
        if self.error:
            body["error"] = self.error
        if self.is_final:
            body["finished_at"] = finished_at
        return body


class BadPayload(ValueError):
    """A command's payload lacks what the machine needs to carry it out: it is rejected."""


IN_HAND = CommandOutcome("in_hand")  # received, waiting or being carried out
IGNORED = CommandOutcome("ignored")
BUSY = CommandOutcome("busy")


EPISODIC_MISBEHAVIOURS = (Misbehaviour.GO_SILENT, Misbehaviour.OVERHEAT, Misbehaviour.RUN_DRY)
# The server's default offline timeout is 600 s: a silence of 11-15 minutes makes it an offline alarm.
DEFAULT_EPISODE_TIMINGS: dict[Misbehaviour, EpisodeTiming] = {
    Misbehaviour.GO_SILENT: EpisodeTiming((60.0, 300.0), (660.0, 900.0), (1800.0, 3600.0)),
    Misbehaviour.OVERHEAT: EpisodeTiming((30.0, 180.0), (240.0, 480.0), (1200.0, 2400.0)),
    Misbehaviour.RUN_DRY: EpisodeTiming((30.0, 180.0), (300.0, 900.0), (1200.0, 2400.0)),
}
# What `simulate_fleet` does without --misbehave: one machine in twenty (at least one) per kind, so a
# demo fleet shows every alarm type.
DEMO_MISBEHAVIOUR: dict[Misbehaviour, float] = dict.fromkeys(Misbehaviour, 0.05)
DEFAULT_MISBEHAVE_FRACTION = 0.1

# How long the machine takes to carry out a command, in seconds (times `command_time_scale`).
REMOTE_BREW_S = (3.0, 5.0)
DOOR_ACTUATION_S = 0.5
PACKAGE_INSTALL_S = (1.0, 2.0)
RESTART_SILENCE_S = (3.0, 6.0)
# Each cleaning program: (seconds it runs, millilitres of water it uses).
CLEAN_PROGRAMS: dict[str, tuple[float, float]] = {
    "rinse": (4.0, 250.0),
    "milk": (6.0, 400.0),
    "full": (10.0, 800.0),
}
SIMULATED_FAULT_S = 0.5
SYNC_PARTS = frozenset({"status", "materials", "orders"})
# Commands a machine cannot start while it is making a customer's drink: it answers `busy`.
WAITS_FOR_THE_CUSTOMER = frozenset({"make_product", "clean", "restart", "upgrade"})
# The payload fields a machine needs to carry out each command type (protocol: "Types and payloads").
PAYLOAD_FIELDS: dict[str, dict[str, type]] = {
    "make_product": {"product_id": str},
    "open_door": {"duration_s": int},
    "upgrade": {"package_id": str, "version": str, "url": str, "sha256": str},
    "sync": {"what": list},
    "set_params": {"params": dict},
    "restart": {},
    "clean": {"program": str},
    "lock": {},
    "unlock": {},
}


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
    EXECUTED = "executed"
    SOCKET = "socket"
    MISBEHAVING = "misbehaving"
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

    Commands: `commands_received` counts the command ids machines got for the first time (also by
    channel); every later delivery of one a machine already had is a duplicate delivery. Each received
    command ends succeeded, failed, rejected or ignored, or is cut off by the stop; `commands_busy`
    counts the times a machine asked for a later retry (the retry is a duplicate delivery).
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
    machines_on_heartbeat: int = 0
    machines_on_pull: int = 0
    machines_on_websocket: int = 0
    machines_misbehaving: int = 0
    commands_received: int = 0
    commands_via_heartbeat: int = 0
    commands_via_pull: int = 0
    commands_via_websocket: int = 0
    commands_succeeded: int = 0
    commands_failed: int = 0
    commands_rejected: int = 0
    commands_busy: int = 0
    commands_ignored: int = 0
    commands_duplicate_deliveries: int = 0
    command_reports_failed: int = 0
    command_results_unsent: int = 0
    pulls_sent: int = 0
    websocket_connections: int = 0
    websocket_drops: int = 0
    silent_periods: int = 0
    overheat_periods: int = 0
    dry_runs: int = 0
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
    sags far below the setpoint. The value never leaves [FLOOR_C, CEILING_C], unless the machine is
    `overheating` (a stuck heater relay, the `overheat` misbehaviour): then it climbs towards
    OVERHEAT_C, and cools back down step by step once the relay lets go.
    """

    FLOOR_C = 15.0
    CEILING_C = 99.0
    OVERHEAT_C = 106.0
    OVERHEAT_CEILING_C = 112.0
    REVERSION = 0.2
    NOISE_C = 0.3

    setpoint_c: float = 92.0
    current_c: float = 92.0
    overheating: bool = False
    _target_c: float = field(default=92.0, init=False, repr=False)
    _excursion_steps: int = field(default=0, init=False, repr=False)

    def step(self, rng: random.Random) -> float:
        if self.overheating:
            self._target_c, self._excursion_steps = self.OVERHEAT_C, 0
        elif self._excursion_steps > 0:
            self._excursion_steps -= 1
        else:
            self._target_c = self.setpoint_c
            self._maybe_start_excursion(rng)
        hot = self.overheating or self.current_c > self.CEILING_C
        ceiling = self.OVERHEAT_CEILING_C if hot else self.CEILING_C
        self.current_c += self.REVERSION * (self._target_c - self.current_c) + rng.gauss(0.0, self.NOISE_C)
        self.current_c = min(ceiling, max(self.FLOOR_C, self.current_c))
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


class Episodes:
    """When one episodic misbehaviour is on, for one machine: a schedule drawn from its `EpisodeTiming`.

    Pure: it only reads the times it is asked about (seconds on the machine's monotonic clock), so tests
    step it with a fake clock. An episode that was never asked about while it lasted is skipped.
    """

    def __init__(self, timing: EpisodeTiming, rng: random.Random, now: float):
        self.timing = timing
        self._rng = rng
        self.starts_at = now + rng.uniform(*timing.first_after_s)
        self.ends_at = self.starts_at + rng.uniform(*timing.lasts_s)

    def is_on(self, now: float) -> bool:
        while now >= self.ends_at:
            self.starts_at = self.ends_at + self._rng.uniform(*self.timing.every_s)
            self.ends_at = self.starts_at + self._rng.uniform(*self.timing.lasts_s)
        return self.starts_at <= now

    def remaining_s(self, now: float) -> float:
        """Seconds the episode on at `now` still lasts; 0 when none is on."""
        return self.ends_at - now if self.is_on(now) else 0.0


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
    pull_interval_s: float = DEFAULT_PULL_INTERVAL_S
    # How long commands take on the machine, times their real durations (0 makes them instant: tests).
    command_time_scale: float = 1.0

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
        return _unwrap(await self._exchange(method, path, body=body, token=token))

    async def download(self, url: str, *, token: str | None = None) -> bytes:
        """The bytes at `url` (a recipe package), with the same retries; the token goes only to the server.

        A URL on another host is fetched without the machine's token: a token never leaves its server.
        """
        target = self.client.base_url.join(url)
        same_server = (target.scheme, target.host, target.port) == (
            self.client.base_url.scheme,
            self.client.base_url.host,
            self.client.base_url.port,
        )
        response = await self._exchange("GET", str(target), token=token if same_server else None)
        if not response.is_success:
            _unwrap(response)  # raises the refusal
        return response.content

    async def _exchange(
        self, method: str, path: str, *, body: Any = None, token: str | None = None
    ) -> httpx.Response:
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
                    return response
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


def _checked_payload(payload: Any, fields: Mapping[str, type]) -> dict[str, Any]:
    """The payload, if it has every field the machine needs with the right JSON type; else BadPayload."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadPayload("not an object")
    for name, kind in fields.items():
        value = payload.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadPayload(f"{name} missing or not {kind.__name__}")
    return payload


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


SocketConnector = Callable[..., Any]


def socket_base_url(base_url: str) -> str:
    """The server's WebSocket origin for an HTTP base URL: http→ws, https→wss, same host and path."""
    url = httpx.URL(base_url)
    scheme = "wss" if url.scheme == "https" else "ws"
    return str(url.copy_with(scheme=scheme, query=None, fragment=None)).rstrip("/")


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
    # Where machines on the WebSocket channel connect (ws(s)://host[:port][/prefix]), and with what.
    socket_url: str = "ws://localhost"
    connect_socket: SocketConnector = websocket_connect

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

    The life loop is `run`: register, then per tick maybe drop offline (or go silent when
    misbehaving), `step` the physics, upload waiting orders, report refills, send waiting command
    results, pull (on the pull channel), heartbeat, then `trade` until the next tick: customers arrive
    at the daily curve's rate and each sale goes up at once. Beside it run the machine's helpers: its
    channel's loop (`poll_commands` or `hold_socket`) and, while it has commands, one worker that
    carries them out in the order they came. Each protocol call is one small method.

    Orders: a sale joins `outbox` and leaves it only when the server has answered for it (accepted,
    duplicate or rejected). Offline, sales wait there; a sale whose call failed stays there; whatever
    waits goes up as a backlog, oldest first, at the next tick (or the next sale).

    Commands: every command id received is remembered with what became of it (`outcome_of`); a final
    result waits in `results_waiting` until the server has acknowledged it.
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
        self.serving_until = -math.inf  # while a customer's drink is being made
        self._next_customer_at: float | None = None
        # Commands: how they come, what the machine remembers of them, and what commands changed.
        self.command_channel = CommandChannel.HEARTBEAT
        self.params: dict[str, Any] = {}
        self.is_locked = False
        self.lock_reason = ""
        self.is_rebooting = False
        self.cleaning_until = -math.inf
        self.door_open_until = -math.inf
        self._handled: OrderedDict[str, CommandOutcome] = OrderedDict()
        self._queue: deque[dict[str, Any]] = deque()
        self.results_waiting: dict[str, CommandOutcome] = {}
        self._worker: asyncio.Task[None] | None = None
        self._socket: Any = None
        self._closing_sockets: set[asyncio.Task[Any]] = set()
        self._registering = asyncio.Lock()
        self._reporting = asyncio.Lock()
        # Misbehaviour: what this machine does wrong on purpose, and when.
        self.misbehaviours: frozenset[Misbehaviour] = frozenset()
        self._episodes: dict[Misbehaviour, Episodes] = {}
        self.dry_bin: int | None = None
        self._was_dry_bin: int | None = None
        self._was_overheating = False

    def misbehave(
        self, kinds: Iterable[str], timings: Mapping[Misbehaviour, EpisodeTiming] | None = None
    ) -> None:
        """Make this machine misbehave from now on; the episodic kinds follow `timings` (defaults)."""
        self.misbehaviours = frozenset(Misbehaviour(kind) for kind in kinds)
        timings = {**DEFAULT_EPISODE_TIMINGS, **(timings or {})}
        now = self._clock()
        self._episodes = {
            kind: Episodes(timings[kind], self.rng, now)
            for kind in EPISODIC_MISBEHAVIOURS
            if kind in self.misbehaviours
        }

    def is_misbehaving(self, kind: Misbehaviour) -> bool:
        """Is an episode of `kind` on now (for fail/ignore_commands: does the machine do it at all)?"""
        if kind not in self.misbehaviours:
            return False
        episodes = self._episodes.get(kind)
        return episodes is None or episodes.is_on(self._clock())

    def silence_due_s(self) -> float:
        """Seconds a `go_silent` episode on now still lasts (0 when the machine may talk)."""
        episodes = self._episodes.get(Misbehaviour.GO_SILENT)
        return episodes.remaining_s(self._clock()) if episodes else 0.0

    @property
    def is_reachable(self) -> bool:
        """Can the machine talk to the server now (not offline, not rebooting)?"""
        return not (self.is_offline or self.is_rebooting)

    # Physics ---------------------------------------------------------------------------------------

    def step(self) -> list[int]:
        """Advance one tick of the machine's life; returns the indexes of bins refilled during it."""
        self.temperature.overheating = self.is_misbehaving(Misbehaviour.OVERHEAT)
        self.temperature.step(self.rng)
        self.rssi_dbm = min(-35, max(-90, self.rssi_dbm + self.rng.randint(-2, 2)))
        self.state = self.rng.choices(("idle", "brewing", "cleaning"), weights=(82, 15, 3))[0]
        if self.state == "brewing" or self.rng.random() < 0.25:
            self._make_drink()
        if self.state == "cleaning":
            self._draw("WATER", RINSE_WATER_ML)
        return self._refill_near_empty_bins() + self._run_dry()

    def _run_dry(self) -> list[int]:
        """The `run_dry` episode: one bin runs low (one tick), then empty until the episode ends; then
        staff refill it (returned, so it is reported with refilled=true)."""
        if Misbehaviour.RUN_DRY not in self.misbehaviours:
            return []
        drying = self.is_misbehaving(Misbehaviour.RUN_DRY)
        if drying and self.dry_bin is None:
            level = self.rng.choice(self.bins)
            self.dry_bin = level.spec.index
            level.remaining = min(level.remaining, level.spec.capacity * 0.08)
            return []
        level = next((b for b in self.bins if b.spec.index == self.dry_bin), None)
        if level is None:
            return []
        if drying:
            level.remaining = 0.0
            return []
        self.dry_bin = None
        level.fill_to(level.spec.capacity * self.rng.uniform(0.85, 1.0))
        return [level.spec.index]

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
            if level.spec.index == self.dry_bin:
                continue
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
        """What the machine says it is doing: brewing while a drink is being made, cleaning while a
        cleaning program runs, maintenance while its door is open; else what the tick made it."""
        now = self._clock()
        if now < self.brewing_until:
            return "brewing"
        if now < self.cleaning_until:
            return "cleaning"
        if now < self.door_open_until:
            return "maintenance"
        return self.state

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
        self.serving_until = max(self._clock(), self.serving_until) + BREW_SECONDS_PER_CUP * cups
        self.brewing_until = max(self.brewing_until, self.serving_until)

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
        if not self.is_reachable:
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
            self.receive_commands(session, commands, CommandChannel.HEARTBEAT)

    # Commands --------------------------------------------------------------------------------------

    def receive_commands(self, session: FleetSession, commands: Any, channel: CommandChannel) -> None:
        """Take commands as they arrive (heartbeat reply, pull or push): queue the new ones, in order, for
        the machine to carry out one at a time; answer a redelivered one from memory, never twice."""
        if not isinstance(commands, list):
            raise ProtocolViolation(f"commands by {channel} is not a list")
        for command in commands:
            command_id = command.get("command_id") if isinstance(command, dict) else None
            if not isinstance(command_id, str) or not command_id:
                logger.warning(
                    "%s: a command without a command_id came by %s: %r", self.serial, channel, command
                )
                continue
            known = self._handled.get(command_id)
            if known is not None:
                self._redelivered(session, command, known, channel)
                continue
            session.stats.commands_received += 1
            counter = f"commands_via_{channel}"
            setattr(session.stats, counter, getattr(session.stats, counter) + 1)
            session.emit(
                EventKind.COMMANDS,
                self.serial,
                f"{command.get('type')} {command_id} via {channel} (attempt {command.get('attempt')})",
            )
            if Misbehaviour.IGNORE_COMMANDS in self.misbehaviours:
                self._remember(command_id, IGNORED)
                session.stats.commands_ignored += 1
                session.emit(
                    EventKind.MISBEHAVING, self.serial, f"ignoring {command.get('type')} {command_id}"
                )
                continue
            self._remember(command_id, IN_HAND)
            self._queue.append(command)
        self._wake_worker(session)

    def _redelivered(
        self, session: FleetSession, command: dict[str, Any], known: CommandOutcome, channel: CommandChannel
    ) -> None:
        """A command id the machine already had: the server never heard how it went (or asked again
        after `busy`). A final result is re-reported, never re-done; work in hand is not started twice."""
        session.stats.commands_duplicate_deliveries += 1
        command_id = command["command_id"]
        if known.status == BUSY.status:
            self._remember(command_id, IN_HAND)
            self._queue.append(command)
            detail = "retried after busy"
        elif known.is_final:
            self.results_waiting[command_id] = known
            detail = f"already {known.status}: result reported again"
        else:
            detail = "ignored again" if known.status == IGNORED.status else "already in hand"
        session.emit(
            EventKind.DUPLICATE, self.serial, f"command {command_id} delivered again via {channel}: {detail}"
        )

    def _remember(self, command_id: str, outcome: CommandOutcome) -> None:
        self._handled[command_id] = outcome
        self._handled.move_to_end(command_id)
        while len(self._handled) > REMEMBERED_COMMANDS:
            oldest, oldest_outcome = next(iter(self._handled.items()))
            if oldest_outcome.status == IN_HAND.status:
                break
            del self._handled[oldest]

    def outcome_of(self, command_id: str) -> CommandOutcome | None:
        """What the machine remembers of a command: in hand, busy, ignored or its final result."""
        return self._handled.get(command_id)

    def _wake_worker(self, session: FleetSession) -> None:
        if (self._queue or self.results_waiting) and (self._worker is None or self._worker.done()):
            self._worker = asyncio.create_task(
                self._guarded(session, self._work_through_commands), name=f"{self.serial} commands"
            )

    async def _work_through_commands(self, session: FleetSession) -> None:
        """Carry out the queued commands one at a time, in the order they came, sending each result as
        soon as it is known (one try each time round; what is not sent waits for the next tick)."""
        while not session.stopping.is_set():
            await self.send_results(session)
            if not self._queue:
                return
            await self.carry_out(session, self._queue.popleft())

    def refusal_of(self, command: dict[str, Any]) -> CommandOutcome | None:
        """Why the machine will not (`rejected`) or cannot now (`busy`) start a command; None if it can."""
        kind = command.get("type")
        fields = PAYLOAD_FIELDS.get(kind) if isinstance(kind, str) else None
        if fields is None:
            return CommandOutcome("rejected", error=f"unsupported command type {kind!r}")
        try:
            payload = _checked_payload(command.get("payload"), fields)
        except BadPayload as error:
            return CommandOutcome("rejected", error=f"bad payload: {error}")
        if kind == "make_product":
            if self.is_locked:
                return CommandOutcome(
                    "rejected", error=f"the machine is locked ({self.lock_reason or 'locked'})"
                )
            if payload["product_id"] not in MENU_BY_ID:
                return CommandOutcome(
                    "rejected", error=f"no product {payload['product_id']!r} on this machine"
                )
        if kind == "clean" and payload["program"] not in CLEAN_PROGRAMS:
            return CommandOutcome("rejected", error=f"no cleaning program {payload['program']!r}")
        if kind == "sync" and not (payload["what"] and set(payload["what"]) <= SYNC_PARTS):
            return CommandOutcome("rejected", error=f"cannot sync {payload['what']!r}")
        if kind == "open_door" and payload["duration_s"] < 1:
            return CommandOutcome("rejected", error="duration_s must be at least 1")
        if kind in WAITS_FOR_THE_CUSTOMER and self._clock() < self.serving_until:
            return CommandOutcome("busy", error="making a customer's drink")
        return None

    async def carry_out(self, session: FleetSession, command: dict[str, Any]) -> CommandOutcome:
        """Say `accepted`, do the command and keep its final result for `send_results` (or ask for a
        retry: `busy`)."""
        command_id, kind = command["command_id"], command.get("type")
        outcome = self.refusal_of(command)
        if outcome is None:
            await self._report(session, command_id, CommandOutcome("accepted"))
            if Misbehaviour.FAIL_COMMANDS in self.misbehaviours:
                await self._busy_for(session, SIMULATED_FAULT_S * session.settings.command_time_scale)
                outcome = CommandOutcome("failed", error="simulated fault (misbehaving: fail_commands)")
            else:
                outcome = await self.execute(session, command)
        if not outcome.is_final:
            session.stats.commands_busy += 1
            self._remember(command_id, BUSY)
            await self._report(session, command_id, outcome)
            return outcome
        self._remember(command_id, outcome)
        counter = f"commands_{outcome.status}"
        setattr(session.stats, counter, getattr(session.stats, counter) + 1)
        error = f": {outcome.error}" if outcome.error else ""
        session.emit(EventKind.EXECUTED, self.serial, f"{kind} {command_id} {outcome.status}{error}")
        self.results_waiting[command_id] = outcome
        return outcome

    async def execute(self, session: FleetSession, command: dict[str, Any]) -> CommandOutcome:
        """Do what the command says, taking the time it takes; the payload has passed `refusal_of`."""
        handlers = {
            "make_product": self._make_product,
            "open_door": self._open_door,
            "upgrade": self._upgrade,
            "sync": self._sync,
            "set_params": self._set_params,
            "restart": self._restart,
            "clean": self._clean,
            "lock": self._lock,
            "unlock": self._unlock,
        }
        return await handlers[command["type"]](session, command.get("payload") or {})

    def remote_brew_materials(self, product: Product, options: Any) -> dict[str, float]:
        """What one remote test cup takes from the bins: the product's cup, scaled by size, plus sugar."""
        options = options if isinstance(options, dict) else {}
        scale = LARGE_CUP_SCALE if options.get("size") == "large" else 1.0
        needs = {material: amount * scale for material, amount in product.materials.items()}
        sugar = options.get("sugar")
        if isinstance(sugar, int) and not isinstance(sugar, bool) and sugar > 0:
            needs[SUGAR_MATERIAL] = needs.get(SUGAR_MATERIAL, 0.0) + SUGAR_PER_LEVEL_G * sugar
        return needs

    async def _make_product(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        """A remote test brew: the bins drain and the machine shows `brewing`, but nothing is sold."""
        product = MENU_BY_ID[payload["product_id"]]
        needs = self.remote_brew_materials(product, payload.get("options"))
        for material, amount in needs.items():
            level = self._bin_of(material)
            if level is not None and level.remaining < amount:
                return CommandOutcome(
                    "failed",
                    error=f"not enough {material}: {level.remaining:.0f} {level.spec.unit} left, "
                    f"{amount:.0f} needed",
                )
        for material, amount in needs.items():
            self._draw(material, amount)
        seconds = self._takes(session, REMOTE_BREW_S)
        self.brewing_until = max(self._clock(), self.brewing_until) + seconds
        await self._busy_for(session, seconds)
        used = {material: round(amount) for material, amount in needs.items()}
        return CommandOutcome(
            "succeeded", {"product_id": product.product_id, "test_brew": True, "used": used}
        )

    async def _open_door(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        """The door unlocks (the result says so) and stays open for `duration_s`, shown as maintenance."""
        await self._busy_for(session, DOOR_ACTUATION_S * session.settings.command_time_scale)
        duration_s = payload["duration_s"]
        self.door_open_until = self._clock() + duration_s * session.settings.command_time_scale
        return CommandOutcome("succeeded", {"door": "open", "duration_s": duration_s})

    async def _upgrade(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        """Download the package, check its SHA-256, install it: the next heartbeat reports its version."""
        try:
            package = await session.api.download(payload["url"], token=self.token)
        except ProtocolError as error:
            return CommandOutcome("failed", error=f"package download failed: {error}")
        digest = hashlib.sha256(package).hexdigest()
        if digest != payload["sha256"].lower():
            return CommandOutcome("failed", error=f"package SHA-256 is {digest}, not {payload['sha256']}")
        await self._busy_for(session, self._takes(session, PACKAGE_INSTALL_S))
        self.package_version = payload["version"]
        return CommandOutcome(
            "succeeded", {"package_id": payload["package_id"], "package_version": self.package_version}
        )

    async def _sync(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        """Report now what the server asked for: waiting orders, every bin's level, a heartbeat."""
        what = set(payload["what"])
        try:
            if "orders" in what and self.outbox:
                await self.upload_backlog(session)
            if "materials" in what:
                await self.report_levels(session)
            if "status" in what:
                await self.heartbeat(session)
        except ProtocolError as error:
            return CommandOutcome("failed", error=f"sync failed: {error}")
        return CommandOutcome("succeeded", {"synced": sorted(what)})

    async def _set_params(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        self.params.update(payload["params"])
        return CommandOutcome("succeeded", {"params": dict(self.params)})

    async def _restart(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        """Go silent for a few seconds (socket dropped, no calls), come back with the uptime reset."""
        seconds = self._takes(session, RESTART_SILENCE_S)
        self.is_rebooting = True
        self._drop_socket()
        session.emit(
            EventKind.OFFLINE, self.serial, f"restarting ({seconds:.1f}s): {payload.get('reason', '')}"
        )
        try:
            await self._busy_for(session, seconds)
        finally:
            self.is_rebooting = False
        self.reboot()
        session.emit(EventKind.BACK, self.serial, "after a remote restart")
        return CommandOutcome("succeeded", {"uptime_s": self.uptime_s})

    async def _clean(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        program = payload["program"]
        seconds, water_ml = CLEAN_PROGRAMS[program]
        seconds *= session.settings.command_time_scale * self.rng.uniform(0.9, 1.1)
        self._draw("WATER", water_ml)
        self.cleaning_until = self._clock() + seconds
        await self._busy_for(session, seconds)
        return CommandOutcome("succeeded", {"program": program, "water_ml": water_ml})

    async def _lock(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        """Locked, the machine sells nothing and refuses remote brews until unlocked."""
        self.is_locked, self.lock_reason = True, str(payload.get("reason") or "")
        return CommandOutcome("succeeded", {"locked": True})

    async def _unlock(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        self.is_locked, self.lock_reason = False, ""
        return CommandOutcome("succeeded", {"locked": False})

    def _takes(self, session: FleetSession, seconds: tuple[float, float]) -> float:
        return self.rng.uniform(*seconds) * session.settings.command_time_scale

    async def _busy_for(self, session: FleetSession, seconds: float) -> None:
        if await session.pause(seconds):
            raise FleetStopping

    def _bin_of(self, material: str) -> BinLevel | None:
        return next((level for level in self.bins if level.spec.material == material), None)

    async def _report(self, session: FleetSession, command_id: str, outcome: CommandOutcome) -> None:
        """A progress report (`accepted`, `busy`): worth sending, not worth keeping if it is lost."""
        if not self.is_reachable:
            return
        try:
            await self._post_result(session, command_id, outcome)
        except ProtocolError as error:
            session.stats.command_reports_failed += 1
            logger.warning(
                "%s: reporting %s for %s failed: %s", self.serial, outcome.status, command_id, error
            )

    async def send_results(self, session: FleetSession) -> None:
        """Send the final results the server has not acknowledged; while it cannot be reached they wait.

        A refusal (404: not this machine's, 409: the server holds another final result) is logged and
        dropped, since sending it again would be refused again.
        """
        async with self._reporting:
            for command_id, outcome in list(self.results_waiting.items()):
                if not self.is_reachable:
                    return
                token = self.token
                try:
                    await self._post_result(session, command_id, outcome)
                except Unauthorized:
                    session.stats.command_reports_failed += 1
                    await self._reregister(session, token)
                    return
                except Rejected as error:
                    if error.status >= 500:
                        session.stats.command_reports_failed += 1
                        return
                    logger.warning("%s: result of %s refused: %s", self.serial, command_id, error)
                except ProtocolError as error:
                    session.stats.command_reports_failed += 1
                    logger.warning("%s: result of %s not sent: %s", self.serial, command_id, error)
                    return
                self.results_waiting.pop(command_id, None)

    async def _post_result(self, session: FleetSession, command_id: str, outcome: CommandOutcome) -> Reply:
        return await session.api.request(
            "POST",
            self.path(f"commands/{quote(command_id, safe='')}/result"),
            body=outcome.as_protocol(format_timestamp(self.machine_time())),
            token=self.token,
        )

    async def pull_commands(self, session: FleetSession) -> None:
        reply = await session.api.request("GET", self.path("commands/pending"), token=self.token)
        session.stats.pulls_sent += 1
        self.receive_commands(session, _require(reply.data, "commands", list), CommandChannel.PULL)

    async def poll_commands(self, session: FleetSession) -> None:
        """The pull channel: ask for commands every pull interval (and the tick asks before heartbeats)."""
        while not await session.pause(session.settings.pull_interval_s * self.rng.uniform(0.9, 1.1)):
            if self.is_reachable and self.device_id is not None:
                await self._attempt(session, self.pull_commands)

    def socket_url(self, session: FleetSession) -> str:
        if self.device_id is None:
            raise RuntimeError(f"{self.serial} has no device_id: register first")
        return f"{session.socket_url}/ws/devices/{quote(self.device_id, safe='')}/"

    async def hold_socket(self, session: FleetSession) -> None:
        """The WebSocket channel: hold /ws/devices/{id}/ open while the machine can talk, and take every
        pushed command. A refused or dropped socket is opened again after a capped, jittered backoff
        that starts over once a socket has stayed up for SOCKET_STABLE_S."""
        failures = 0
        while not session.stopping.is_set():
            if not self.is_reachable or self.token is None:
                if await session.pause(0.2):
                    return
                continue
            opened_at: float | None = None
            try:
                async with session.connect_socket(
                    self.socket_url(session),
                    additional_headers={"Authorization": f"Device {self.token}"},
                    user_agent_header=USER_AGENT,
                    proxy=None,
                    compression=None,
                    open_timeout=REQUEST_TIMEOUT.connect,
                ) as socket:
                    opened_at = self._clock()
                    self._socket = socket
                    session.stats.websocket_connections += 1
                    session.emit(EventKind.SOCKET, self.serial, "open")
                    async for message in socket:
                        self._take_push(session, message)
            except (OSError, TimeoutError, WebSocketException) as error:
                logger.debug("%s: socket: %s: %s", self.serial, type(error).__name__, error)
            finally:
                self._socket = None
            if session.stopping.is_set():
                return
            if opened_at is not None:
                session.stats.websocket_drops += 1
                if self._clock() - opened_at >= SOCKET_STABLE_S:
                    failures = 0
            failures += 1
            delay = min(SOCKET_BACKOFF_CAP_S, SOCKET_BACKOFF_BASE_S * 2 ** min(failures - 1, 6))
            delay *= self.rng.uniform(0.5, 1.0)
            if opened_at is not None or failures == 1:
                session.emit(EventKind.SOCKET, self.serial, f"closed; opening again in {delay:.1f}s")
            if await session.pause(delay):
                return

    def _take_push(self, session: FleetSession, message: str | bytes) -> None:
        try:
            push = json.loads(message)
        except ValueError:
            logger.warning("%s: the socket sent something that is not JSON: %r", self.serial, message[:200])
            return
        if isinstance(push, dict) and push.get("type") == "command" and isinstance(push.get("command"), dict):
            self.receive_commands(session, [push["command"]], CommandChannel.WEBSOCKET)

    def _drop_socket(self) -> None:
        """Close the socket now (going silent, restarting); `hold_socket` waits until the machine talks."""
        if self._socket is not None:
            closing = asyncio.ensure_future(self._socket.close())
            self._closing_sockets.add(closing)
            closing.add_done_callback(self._closing_sockets.discard)

    async def report_levels(self, session: FleetSession) -> None:
        """Every bin's level now (a `sync` of materials), none flagged as a refill."""
        body = {
            "sent_at": format_timestamp(self.machine_time()),
            "bins": [level.as_protocol(refilled=False) for level in self.bins],
        }
        await session.api.request("POST", self.path("materials/report"), body=body, token=self.token)
        session.stats.material_reports_sent += 1

    def _note_episodes(self, session: FleetSession) -> None:
        """Count and announce the misbehaviour episodes that began or ended during the last step."""
        overheating = self.temperature.overheating
        if overheating != self._was_overheating:
            self._was_overheating = overheating
            if overheating:
                session.stats.overheat_periods += 1
            session.emit(
                EventKind.MISBEHAVING,
                self.serial,
                "overheating: the boiler climbs above 100 °C"
                if overheating
                else "overheat over: cooling down",
            )
        if self.dry_bin != self._was_dry_bin:
            if self.dry_bin is not None:
                session.stats.dry_runs += 1
                level = self._bin_of_index(self.dry_bin)
                session.emit(EventKind.MISBEHAVING, self.serial, f"running bin {self.dry_bin} ({level}) dry")
            else:
                session.emit(
                    EventKind.MISBEHAVING, self.serial, f"bin {self._was_dry_bin} refilled after running dry"
                )
            self._was_dry_bin = self.dry_bin

    def _bin_of_index(self, index: int) -> str:
        return next((level.spec.material for level in self.bins if level.spec.index == index), "?")

    async def _guarded(self, session: FleetSession, work: Callable[[FleetSession], Awaitable[None]]) -> None:
        """A helper of the machine (command worker, pull loop, socket): a bug is logged, never silent."""
        try:
            await work(session)
        except (FleetStopping, MachineStopped):
            pass
        except Exception:
            logger.exception("%s: a helper crashed; the machine carries on without it", self.serial)
            session.stats.machines_crashed += 1
            session.emit(EventKind.CRASHED, self.serial, "a helper crashed: see the log for the traceback")

    def _start_channel(self, session: FleetSession) -> list[asyncio.Task[None]]:
        loops = {CommandChannel.PULL: self.poll_commands, CommandChannel.WEBSOCKET: self.hold_socket}
        loop = loops.get(self.command_channel)
        if loop is None:
            return []
        return [
            asyncio.create_task(self._guarded(session, loop), name=f"{self.serial} {self.command_channel}")
        ]

    async def _stop_helpers(self, helpers: list[asyncio.Task[None]]) -> None:
        tasks = [*helpers, *([self._worker] if self._worker else []), *self._closing_sockets]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # Life loop -------------------------------------------------------------------------------------

    async def run(self, session: FleetSession) -> None:
        """Live until the fleet stops (or is cancelled), or the server refuses this machine for good."""
        jitter = min(session.settings.max_start_jitter_s, self.interval_s(session))
        if await session.pause(self.rng.uniform(0.0, jitter)):
            return
        helpers: list[asyncio.Task[None]] = []
        try:
            reply = await self.register_until_accepted(session)
            session.stats.registered += 1
            known = "known serial" if reply.status == 200 else "new"
            session.emit(
                EventKind.REGISTERED,
                self.serial,
                f"device {self.device_id} ({known}), commands by {self.command_channel}",
            )
            if self.misbehaviours:
                session.emit(EventKind.MISBEHAVING, self.serial, ", ".join(sorted(self.misbehaviours)))
            helpers = self._start_channel(session)
            while not session.stopping.is_set():
                drops_offline = self.rng.random() < session.settings.offline_probability
                silence_s = self.silence_due_s()
                if silence_s > 0 or drops_offline:
                    await self.stay_offline(session, silence_s or None)
                    if session.stopping.is_set():
                        break
                await self.tick(session)
                await self.trade(session, self.interval_s(session) * self.rng.uniform(0.95, 1.05))
        except MachineStopped as error:
            session.stats.machines_refused += 1
            session.emit(EventKind.REFUSED, self.serial, str(error))
        except FleetStopping:
            pass
        finally:
            await self._stop_helpers(helpers)

    async def tick(self, session: FleetSession) -> None:
        self.unreported_refills.update(self.step())
        self._note_episodes(session)
        if not self.is_reachable:
            return
        if self.outbox:
            await self._attempt(session, self.upload_backlog)
        if self.unreported_refills:
            await self._attempt(session, self.report_materials)
        if self.results_waiting:
            await self.send_results(session)
        if self.command_channel == CommandChannel.PULL:
            # Just before the heartbeat, so the machine's commands come by its channel, not in the reply.
            await self._attempt(session, self.pull_commands)
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
            # A locked machine serves nobody.
            if (
                self.rng.random() * peak < session.settings.sales_rate_per_hour(shop_time)
                and not self.is_locked
            ):
                await self.sell(session)

    async def _attempt(self, session: FleetSession, call: Callable[[FleetSession], Awaitable[None]]) -> None:
        """Run one protocol call the way a machine does: re-register on 401, note failures, carry on."""
        token = self.token
        try:
            await call(session)
        except Unauthorized:
            await self._reregister(session, token)
        except ProtocolError as error:
            logger.warning("%s: %s failed: %s", self.serial, call.__name__, error)
            session.emit(EventKind.FAILED, self.serial, f"{call.__name__}: {error}")

    async def _reregister(self, session: FleetSession, refused_token: str | None) -> None:
        """Register again after a 401, once: the heartbeat, the pull and the results may all be refused
        the same token at once, and a second registration would revoke the first one's new token."""
        async with self._registering:
            if self.token != refused_token:
                return
            await self.register_until_accepted(session)
            session.stats.reregistrations += 1
            session.emit(EventKind.REREGISTERED, self.serial, f"device {self.device_id}")

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

    async def stay_offline(self, session: FleetSession, duration_s: float | None = None) -> None:
        """Go silent for a while (network loss or power cut), still selling: the sales wait in `outbox`.

        For `duration_s` (a `go_silent` episode), else for `offline_intervals` heartbeat intervals. The
        machine keeps living meanwhile; its waiting orders go up as a backlog at the next tick.
        """
        interval = self.interval_s(session)
        if duration_s is None:
            low, high = session.settings.offline_intervals
            duration = self.rng.uniform(low, high) * interval
            why = ""
        else:
            duration = duration_s
            session.stats.silent_periods += 1
            why = " (misbehaving: go_silent)"
        session.stats.offline_periods += 1
        session.emit(EventKind.OFFLINE, self.serial, f"for {duration:.1f}s{why}")
        self.is_offline = True
        self._drop_socket()
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


def command_channels_of(channels: str | Iterable[str]) -> tuple[CommandChannel, ...]:
    """The channels machines take in turn: "mixed" (all three), one channel's name, or several names."""
    names = [channels] if isinstance(channels, str) else list(channels)
    if names == [MIXED_CHANNELS]:
        return tuple(CommandChannel)
    try:
        chosen = tuple(CommandChannel(name) for name in names)
    except ValueError as error:
        raise FleetConfigurationError(
            f"command channels are {', '.join(CommandChannel)} or {MIXED_CHANNELS}: {error}"
        ) from error
    if not chosen:
        raise FleetConfigurationError("give at least one command channel")
    return chosen


def choose_misbehaving(
    serials: Sequence[str], fractions: Mapping[str, float], rng: random.Random
) -> dict[str, set[Misbehaviour]]:
    """Which machines misbehave how: for each kind, that fraction of the fleet (at least one machine
    when the fraction is above 0), the kinds spread over different machines as far as the fleet allows."""
    order = list(serials)
    rng.shuffle(order)
    chosen: dict[str, set[Misbehaviour]] = {}
    cursor = 0
    for kind in Misbehaviour:
        fraction = fractions.get(kind, 0.0)
        if fraction <= 0 or not order:
            continue
        count = min(len(order), max(1, round(fraction * len(order))))
        for offset in range(count):
            chosen.setdefault(order[(cursor + offset) % len(order)], set()).add(kind)
        cursor += count
    return chosen


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
    if not (math.isfinite(settings.pull_interval_s) and settings.pull_interval_s > 0):
        raise FleetConfigurationError("pull_interval_s must be positive")
    if not (math.isfinite(settings.command_time_scale) and settings.command_time_scale >= 0):
        raise FleetConfigurationError("command_time_scale must be a number of at least 0")


def _checked_misbehaviour(
    misbehave: Mapping[str, float] | None,
    misbehaving_serials: Mapping[str, Iterable[str]] | None,
    timings: Mapping[str, EpisodeTiming] | None,
) -> tuple[dict[str, float], dict[str, set[Misbehaviour]], dict[Misbehaviour, EpisodeTiming]]:
    known = ", ".join(Misbehaviour)
    try:
        fractions = {Misbehaviour(kind): float(f) for kind, f in (misbehave or {}).items()}
        by_serial = {
            serial: {Misbehaviour(kind) for kind in kinds}
            for serial, kinds in (misbehaving_serials or {}).items()
        }
        episode_timings = {Misbehaviour(kind): timing for kind, timing in (timings or {}).items()}
    except ValueError as error:
        raise FleetConfigurationError(f"misbehaviours are {known}: {error}") from error
    if not all(0.0 <= fraction <= 1.0 for fraction in fractions.values()):
        raise FleetConfigurationError("a misbehaving fraction must be between 0 and 1")
    for kind, timing in episode_timings.items():
        ranges = (timing.first_after_s, timing.lasts_s, timing.every_s)
        if kind not in EPISODIC_MISBEHAVIOURS or not all(0.0 <= low <= high for low, high in ranges):
            raise FleetConfigurationError(
                f"{kind}: timings are for {', '.join(EPISODIC_MISBEHAVIOURS)}, as (low, high) ranges from 0"
            )
    return fractions, by_serial, episode_timings


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
    command_channels: str | Iterable[str] = MIXED_CHANNELS,
    pull_interval_s: float = DEFAULT_PULL_INTERVAL_S,
    command_time_scale: float = 1.0,
    misbehave: Mapping[str, float] | None = None,
    misbehaving_serials: Mapping[str, Collection[str]] | None = None,
    misbehaviour_timings: Mapping[str, EpisodeTiming] | None = None,
    connect_socket: SocketConnector | None = None,
) -> FleetStats:
    """Run `devices` machines concurrently until `duration_s` passes, `stop` is set or all have stopped.

    `heartbeat_interval_s` overrides the server's interval (fast demos and tests); `offline_probability`
    is the chance per tick that a machine drops offline, for `offline_intervals` (low, high) heartbeat
    intervals. Each machine sells `sales_per_hour` drinks on average over the day, shaped by
    `sales_curve` (24 hourly weights, shop time; `FLAT_SALES_CURVE` for a steady rate); 0 sells nothing.
    `duplicate_probability` is the chance that a machine re-sends an answered order (a lost reply).
    `state_file` keeps each machine's order counter across runs, so a restarted fleet never reuses an
    order id; without it the counters start at 1. `transport` (and `connect_socket`, the WebSocket
    opener) let tests run the fleet against an in-process fake.

    Commands: machine N collects its commands by `command_channels[N mod len]` ("mixed": heartbeat,
    pull, websocket in turn; or one channel's name), pulling every `pull_interval_s`; commands take
    their real durations times `command_time_scale`. Misbehaviour: `misbehave` maps a `Misbehaviour`
    to the fraction of the fleet that does it (at least one machine when above 0);
    `misbehaving_serials` names machines that do given kinds; `misbehaviour_timings` replaces the
    episodes' `DEFAULT_EPISODE_TIMINGS` (fast demos and tests).

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
        pull_interval_s=float(pull_interval_s),
        command_time_scale=float(command_time_scale),
    )
    channels = command_channels_of(command_channels)
    fractions, by_serial, episode_timings = _checked_misbehaviour(
        misbehave, misbehaving_serials, misbehaviour_timings
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
    misbehaving = choose_misbehaving(
        [machine.serial for machine in machines],
        fractions,
        random.Random(f"{seed}:misbehave") if seed is not None else random.Random(),
    )
    strangers = set(by_serial) - {machine.serial for machine in machines}
    if strangers:
        raise FleetConfigurationError(
            f"misbehaving_serials names machines not in the fleet: {sorted(strangers)}"
        )
    for serial, kinds in by_serial.items():
        misbehaving.setdefault(serial, set()).update(kinds)
    for position, machine in enumerate(machines):
        machine.next_order_number = order_numbers.first_free(machine.serial)
        machine.command_channel = channels[position % len(channels)]
        if misbehaving.get(machine.serial):
            machine.misbehave(misbehaving[machine.serial], episode_timings)
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
            socket_url=socket_base_url(base_url),
            connect_socket=connect_socket or websocket_connect,
        )
        for machine in machines:
            counter = f"machines_on_{machine.command_channel}"
            setattr(session.stats, counter, getattr(session.stats, counter) + 1)
        session.stats.machines_misbehaving = sum(1 for machine in machines if machine.misbehaviours)
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
    stats.command_results_unsent = sum(len(machine.results_waiting) for machine in machines)
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
