"""A machine's physics, pure and steppable in tests: its bins (`BinSpec`, `BinLevel`), what a drink
takes out of them, how the staff refill them (`RefillRounds`), its boiler (`BoilerTemperature`), and
when a misbehaviour episode is on (`Episodes`)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from simulator.vocabulary import EpisodeTiming


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

# A tick is one heartbeat interval (30 s from the server by default) and makes about a third of a drink
# besides the sales, so a full bin lasts about 60 (water) to 275 (sugar) ticks: half an hour to over
# two hours. Rounds every 40 ticks (20 minutes) that leave bins above 30 % alone let the bins run under
# the server's 15 % low threshold, and now and then empty, before the staff come back: about one bin
# in twenty is low at any time, and one in a hundred empty.
DEFAULT_REFILL_ROUND_TICKS = 40.0
DEFAULT_REFILL_BELOW_SHARE = 0.3
DEFAULT_FORGET_REFILL_PROBABILITY = 0.1
# An empty bin is noticed (the back office raises material_empty) and someone comes out before the
# round: each tick with this chance, so it stays empty for a few minutes, long enough to be seen.
EMPTY_BIN_CALLOUT_PROBABILITY = 0.15
REFILL_ROUND_JITTER = 0.2
REFILLED_SHARE = (0.85, 1.0)


@dataclass(frozen=True)
class RefillRounds:
    """How the staff look after a machine's bins, in ticks (heartbeat intervals, as the drain goes).

    A round comes every `every_ticks` (give or take REFILL_ROUND_JITTER of it; a machine's first one
    anywhere within the first interval, so a fleet's rounds are spread out) and tops up each bin
    below `below_share` of its capacity; between rounds only an empty bin gets a call-out. Each
    refill goes unreported with `forget_report_probability`: the staff forgot to tell the machine,
    so no `refilled: true` goes up and only the next heartbeat's higher level shows it.
    """

    every_ticks: float = DEFAULT_REFILL_ROUND_TICKS
    below_share: float = DEFAULT_REFILL_BELOW_SHARE
    forget_report_probability: float = DEFAULT_FORGET_REFILL_PROBABILITY

    def next_round_in(self, rng: random.Random) -> float:
        return self.every_ticks * rng.uniform(1.0 - REFILL_ROUND_JITTER, 1.0 + REFILL_ROUND_JITTER)


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

    spec: BinSpec
    remaining: float

    @property
    def share(self) -> float:
        """How full the bin is, from 0 (empty) to 1 (full)."""
        return self.remaining / self.spec.capacity if self.spec.capacity else 0.0

    def draw(self, amount: float) -> None:
        self.remaining = max(0.0, self.remaining - max(0.0, amount))

    def fill_to(self, level: float) -> None:
        self.remaining = min(float(self.spec.capacity), max(self.remaining, level))

    def refill(self, rng: random.Random) -> None:
        """Staff fill the bin as people do: to somewhere within REFILLED_SHARE of its capacity."""
        self.fill_to(self.spec.capacity * rng.uniform(*REFILLED_SHARE))

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
