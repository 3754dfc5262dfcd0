"""The machine itself, all pure: its state, its physics step, the drinks it makes, the orders it
writes and the bodies of its reports."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from simulator.client import format_timestamp
from simulator.packages import FailedInstall, InstalledPackage, PackageOffer
from simulator.physics import (
    DEFAULT_BINS,
    DRINK_RECIPES,
    EMPTY_BIN_CALLOUT_PROBABILITY,
    MAX_SUGAR_PER_DRINK_G,
    RINSE_WATER_ML,
    SUGAR_MATERIAL,
    UNLISTED_MATERIAL_SHARE,
    WATER_MATERIAL,
    BinLevel,
    BinSpec,
    BoilerTemperature,
    Episodes,
    RefillRounds,
)
from simulator.sales import (
    BREW_SECONDS_PER_CUP,
    CHINA,
    LARGE_CUP_SCALE,
    LINES_PER_ORDER,
    PAYMENT_STATUSES,
    QUANTITIES,
    SIZES,
    SUGAR_LEVELS,
    SUGAR_PER_LEVEL_G,
    TRANSACTION_PREFIXES,
    Product,
    Region,
    SaleOrder,
    format_money,
    machine_order_id,
    weighted_choice,
)
from simulator.vocabulary import (
    DEFAULT_EPISODE_TIMINGS,
    EPISODIC_MISBEHAVIOURS,
    LEAK_SHARE,
    CommandChannel,
    CommandOutcome,
    EpisodeTiming,
    Misbehaviour,
)

MACHINE_STATES = ("idle", "brewing", "cleaning", "maintenance", "fault")
DEFAULT_HEARTBEAT_INTERVAL_S = 30.0
FACTORY_PACKAGE_VERSION = "2026.1.0"
WIFI_NETWORKS = ("shop-5g", "shop-2g", "coffee-iot", "lobby-staff")


class Body:
    """What the machine is and does on its own: state, physics, drinks, orders and report bodies."""

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
        region: Region = CHINA,
    ):
        self.serial = serial
        self.region = region
        self.model = model
        self.firmware = firmware
        self.alias = alias
        self.rng = rng or random.Random()
        self._clock = clock
        # Met mid-life, between the staff's rounds: some bins are low already, so a demo fleet shows
        # material_low alarms from its first heartbeats.
        self.bins = [BinLevel(spec, spec.capacity * self.rng.uniform(0.1, 1.0)) for spec in bins]
        self.temperature = BoilerTemperature()
        self.state = "idle"
        self.ip = f"10.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(2, 254)}"
        self.wifi_ssid = self.rng.choice(WIFI_NETWORKS)
        self.rssi_dbm = self.rng.randint(-75, -45)
        # A real fleet has been running for a while and its clocks drift; some report the shops' local time.
        self._uptime_at_boot_s = self.rng.randint(600, 30 * 86400)
        self._booted_at = clock()
        self.clock_skew = timedelta(seconds=self.rng.uniform(-20.0, 20.0))
        self.tz = self.rng.choice((UTC, region.shop_timezone))
        self.device_id: str | None = None
        self.token: str | None = None
        self.server_interval_s = DEFAULT_HEARTBEAT_INTERVAL_S
        # Recipes: the package installed (None: the factory recipes, the region's menu), the one the
        # server wants it to run, and the ones that failed to install (tried again later, not every tick).
        self.package: InstalledPackage | None = None
        self.desired_package: PackageOffer | None = None
        self.failed_installs: dict[tuple[str, str, str], FailedInstall] = {}
        self._installing = asyncio.Lock()
        self.unreported_refills: set[int] = set()
        # Refills: the staff's rounds, when the next one comes (drawn at the first step), how many came,
        # and the refills nobody reported (for the life loop to tell the run log about).
        self.refill_rounds = RefillRounds()
        self.unsold_drain: bool | None = None  # None: as `drains_unsold` decides
        self._ticks_to_round: float | None = None
        self.refill_rounds_made = 0
        self.forgotten_refills: list[int] = []
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

    def schedule_refills(self, rounds: RefillRounds) -> None:
        """The staff look after the bins with `rounds` from now on; the first round is drawn anew."""
        self.refill_rounds = rounds
        self._ticks_to_round = None

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
        """Advance one tick of the machine's life; returns the indexes of the bins refilled during it
        that the staff reported (the ones they forgot join `forgotten_refills`)."""
        self.temperature.overheating = self.is_misbehaving(Misbehaviour.OVERHEAT)
        self.temperature.step(self.rng)
        self.rssi_dbm = min(-35, max(-90, self.rssi_dbm + self.rng.randint(-2, 2)))
        self.state = self.rng.choices(("idle", "brewing", "cleaning"), weights=(82, 15, 3))[0]
        if self.drains_unsold and (self.state == "brewing" or self.rng.random() < 0.25):
            self._make_drink()
        if self.drains_unsold and self.state == "cleaning":
            self._draw(WATER_MATERIAL, RINSE_WATER_ML)
        return self._staff_refills() + self._run_dry()

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
        level.refill(self.rng)
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

    @property
    def drains_unsold(self) -> bool:
        """Do the bins drain besides the sales (a third of a drink a tick, and rinses)? `unsold_drain`
        says so, or by default: on the factory menu, whose sales the back office cannot book by recipe,
        it speeds the demo's bins up; with an installed package the back office books every cup by its
        recipe, and a drain no sale explains would flag every bin's variance."""
        if self.unsold_drain is not None:
            return self.unsold_drain
        return self.package is None

    def _draw(self, material: str, amount: float) -> None:
        if Misbehaviour.LEAK in self.misbehaviours:
            amount *= 1.0 + LEAK_SHARE
        for level in self.bins:
            if level.spec.material == material:
                level.draw(amount)

    def _staff_refills(self) -> list[int]:
        """A due round tops up every bin below its share; between rounds an empty bin may get a call-out.
        The bin running dry on purpose is left alone. Returns the refills the staff reported."""
        rounds = self.refill_rounds
        if self._ticks_to_round is None:
            self._ticks_to_round = self.rng.uniform(0.0, rounds.every_ticks)
        self._ticks_to_round -= 1
        is_round = self._ticks_to_round <= 0
        if is_round:
            self._ticks_to_round += rounds.next_round_in(self.rng)
            self.refill_rounds_made += 1
        reported = []
        for level in self.bins:
            if level.spec.index == self.dry_bin:
                continue
            is_topped_up = is_round and level.share < rounds.below_share
            if is_topped_up or (level.remaining <= 0 and self.rng.random() < EMPTY_BIN_CALLOUT_PROBABILITY):
                level.refill(self.rng)
                if self.rng.random() < rounds.forget_report_probability:
                    self.forgotten_refills.append(level.spec.index)
                else:
                    reported.append(level.spec.index)
        return reported

    @property
    def package_version(self) -> str:
        return self.package.version if self.package else FACTORY_PACKAGE_VERSION

    @property
    def menu(self) -> tuple[Product, ...]:
        """What the machine sells: its package's recipes, or the built-in menu without one."""
        return self.package.menu if self.package else self.region.menu

    def product(self, product_id: str) -> Product | None:
        return next((product for product in self.menu if product.product_id == product_id), None)

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
        """The next sale, numbered, priced and timed on the machine's clock, as the protocol's order body:
        drinks from its menu (the package's, priced and versioned by its recipes, once it has one)."""
        moment = now or self.machine_time()
        number, self.next_order_number = self.next_order_number, self.next_order_number + 1
        menu = self.menu
        lines = []
        for _ in range(weighted_choice(self.rng, LINES_PER_ORDER)):
            product = self.rng.choices(menu, weights=[product.weight for product in menu])[0]
            lines.append((product, weighted_choice(self.rng, QUANTITIES)))
        total = sum((product.price * qty for product, qty in lines), Decimal("0.00"))
        order_id = machine_order_id(self.serial, moment, number)
        body = {
            "order_id": order_id,
            "created_at": format_timestamp(moment),
            "currency": self.region.currency,
            "total": format_money(total),
            "payment": self._payment(),
            "items": [
                {
                    "product_id": product.product_id,
                    "name": product.name,
                    "qty": qty,
                    "unit_price": format_money(product.price),
                    "recipe_version": product.recipe_version,
                    "options": self._options(product),
                }
                for product, qty in lines
            ],
            "is_test": False,
        }
        return SaleOrder(order_id, total, body)

    def _options(self, product: Product) -> dict[str, Any]:
        """A built-in drink's size and sugar, as the customer chose; a package's recipe has neither."""
        if not product.takes_options:
            return {}
        return {"size": weighted_choice(self.rng, SIZES), "sugar": weighted_choice(self.rng, SUGAR_LEVELS)}

    def _payment(self) -> dict[str, str]:
        method = weighted_choice(self.rng, self.region.payment_methods)
        status = "paid" if method == "cash" else weighted_choice(self.rng, PAYMENT_STATUSES)
        payment = {"method": method, "status": status}
        if status == "paid" and method in TRANSACTION_PREFIXES:
            payment["transaction_id"] = f"{TRANSACTION_PREFIXES[method]}-{self.rng.randrange(10**9, 10**10)}"
        return payment

    def brew(self, order: SaleOrder) -> None:
        """Make the order's drinks: the bins drain by each drink's recipe (give or take the dosing's few
        per cent) and the machine reports `brewing` meanwhile."""
        cups = 0
        for item in order.body["items"]:
            product = self.product(item["product_id"])
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

    def _bin_of(self, material: str) -> BinLevel | None:
        return next((level for level in self.bins if level.spec.material == material), None)

    def _bin_of_index(self, index: int) -> str:
        return next((level.spec.material for level in self.bins if level.spec.index == index), "?")
