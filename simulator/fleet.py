"""A fleet: its machines (`build_fleet`), who misbehaves how, the checks on its arguments, and
`run_fleet`, which runs it until its time is up or it is told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import httpx
from websockets.asyncio.client import connect as websocket_connect

from simulator.client import REQUEST_TIMEOUT, USER_AGENT, ProtocolClient
from simulator.errors import FleetConfigurationError
from simulator.machine import SimulatedMachine
from simulator.physics import DEFAULT_FORGET_REFILL_PROBABILITY, DEFAULT_REFILL_ROUND_TICKS, RefillRounds
from simulator.sales import (
    CHINA,
    DAILY_SALES_CURVE,
    DEFAULT_DUPLICATE_PROBABILITY,
    DEFAULT_SALES_PER_HOUR,
    MAX_SERIAL_PREFIX_FOR_SALES,
    OrderNumbers,
    Region,
)
from simulator.session import (
    DEFAULT_OFFLINE_PROBABILITY,
    EventKind,
    EventSink,
    FleetSession,
    FleetSettings,
    FleetStats,
    OrderRecord,
    SocketConnector,
    socket_base_url,
)
from simulator.vocabulary import (
    DEFAULT_PULL_INTERVAL_S,
    EPISODIC_MISBEHAVIOURS,
    MIXED_CHANNELS,
    CommandChannel,
    EpisodeTiming,
    Misbehaviour,
)

logger = logging.getLogger(__name__)
MAX_CONNECTIONS = 50
# How long run_fleet lets machines finish the call they are in once told to stop: an order whose
# request is cut off may be stored without the machine knowing, and then the books disagree.
STOP_GRACE_S = 5.0

MACHINE_MODELS: tuple[tuple[str, str], ...] = (
    ("CM-2000", "1.4.2"),
    ("CM-3000", "2.1.0"),
    ("EspressoPro", "3.0.7"),
)
ALIAS_PLACES = ("Lobby", "Pantry", "Library", "Gym", "Cafeteria", "Reception", "Station", "Campus")


def fleet_serial(prefix: str, index: int) -> str:
    """Deterministic serials, so a restarted simulation re-registers the same machines (200, new token)."""
    return f"{prefix}-{index:06d}"


def build_fleet(
    devices: int, serial_prefix: str = "SIM", seed: int | None = None, region: Region = CHINA
) -> list[SimulatedMachine]:
    """The same prefix and seed give the same machines (serials, models, aliases, starting levels);
    they sell the `region`'s menu in its currency, on its shops' clock."""
    machines = []
    for index in range(1, devices + 1):
        serial = fleet_serial(serial_prefix, index)
        model, firmware = MACHINE_MODELS[(index - 1) % len(MACHINE_MODELS)]
        alias = f"{ALIAS_PLACES[(index - 1) % len(ALIAS_PLACES)]} {(index - 1) // len(ALIAS_PLACES) + 1}"
        rng = random.Random(f"{seed}:{serial}") if seed is not None else random.Random()
        machines.append(SimulatedMachine(serial, model, firmware, alias, rng=rng, region=region))
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
    rounds = settings.refill_rounds
    if not (math.isfinite(rounds.every_ticks) and rounds.every_ticks > 0):
        raise FleetConfigurationError("refill_round_intervals must be positive")
    if not 0.0 <= rounds.forget_report_probability <= 1.0:
        raise FleetConfigurationError("forget_refill_probability must be between 0 and 1")
    if not 0.0 <= settings.install_failure_probability <= 1.0:
        raise FleetConfigurationError("install_failure_probability must be between 0 and 1")


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
    refill_round_intervals: float = DEFAULT_REFILL_ROUND_TICKS,
    forget_refill_probability: float = DEFAULT_FORGET_REFILL_PROBABILITY,
    install_failure_probability: float = 0.0,
    misbehave: Mapping[str, float] | None = None,
    misbehaving_serials: Mapping[str, Collection[str]] | None = None,
    misbehaviour_timings: Mapping[str, EpisodeTiming] | None = None,
    connect_socket: SocketConnector | None = None,
    region: Region = CHINA,
) -> FleetStats:
    """Run `devices` machines concurrently until `duration_s` passes, `stop` is set or all have stopped.

    `heartbeat_interval_s` overrides the server's interval (fast demos and tests); `offline_probability`
    is the chance per tick that a machine drops offline, for `offline_intervals` (low, high) heartbeat
    intervals. Each machine sells `sales_per_hour` drinks on average over the day, shaped by
    `sales_curve` (24 hourly weights, shop time; `FLAT_SALES_CURVE` for a steady rate); 0 sells nothing.
    `region` says where the shops are: the factory menu, the currency, the payment methods and the clock
    the curve runs on (`CHINA` by default, `UK` for London).
    `duplicate_probability` is the chance that a machine re-sends an answered order (a lost reply).
    `state_file` keeps each machine's order counter across runs, so a restarted fleet never reuses an
    order id; without it the counters start at 1. `transport` (and `connect_socket`, the WebSocket
    opener) let tests run the fleet against an in-process fake.

    Commands: machine N collects its commands by `command_channels[N mod len]` ("mixed": heartbeat,
    pull, websocket in turn; or one channel's name), pulling every `pull_interval_s`; commands take
    their real durations times `command_time_scale`. Bins: staff come round every
    `refill_round_intervals` ticks (heartbeat intervals, give or take a fifth) and top up the low bins
    (`RefillRounds`); each refill goes unreported with `forget_refill_probability`. Packages: machines
    install the package each heartbeat reply (or `upgrade` command) names; an install fails on any
    machine with `install_failure_probability`, and always on `fail_installs` ones. Misbehaviour:
    `misbehave` maps a `Misbehaviour` to the fraction of the fleet that does it (at least one machine
    when above 0); `misbehaving_serials` names machines that do given kinds; `misbehaviour_timings`
    replaces the episodes' `DEFAULT_EPISODE_TIMINGS` (fast demos and tests).

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
        refill_rounds=RefillRounds(
            every_ticks=float(refill_round_intervals),
            forget_report_probability=float(forget_refill_probability),
        ),
        install_failure_probability=float(install_failure_probability),
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
    machines = build_fleet(devices, serial_prefix, seed, region)
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
        machine.schedule_refills(session_settings.refill_rounds)
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
    stats.refill_rounds = sum(machine.refill_rounds_made for machine in machines)
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
