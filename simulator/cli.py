"""The fleet's command line, shared by `python -m simulator` and `manage.py simulate-fleet`: the options,
the run with Ctrl-C (SIGINT/SIGTERM) turned into a clean stop, and the lines an operator reads.

Plain values only: where the provisioning secret and the data directory come from is the caller's
business (an option here, the database and the settings in the Django command).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.fleet import run_fleet
from simulator.physics import (
    DEFAULT_FORGET_REFILL_PROBABILITY,
    DEFAULT_REFILL_BELOW_SHARE,
    DEFAULT_REFILL_ROUND_TICKS,
)
from simulator.sales import (
    CHINA,
    DAILY_SALES_CURVE,
    DEFAULT_DUPLICATE_PROBABILITY,
    DEFAULT_SALES_PER_HOUR,
    FLAT_SALES_CURVE,
    REGIONS,
)
from simulator.session import DEFAULT_OFFLINE_PROBABILITY, EventKind, FleetEvent, FleetStats
from simulator.vocabulary import (
    DEFAULT_MISBEHAVE_FRACTION,
    DEFAULT_PULL_INTERVAL_S,
    DEMO_MISBEHAVIOUR,
    MIXED_CHANNELS,
    CommandChannel,
    Misbehaviour,
)

DESCRIPTION = (
    "Simulate N coffee machines speaking the machine protocol against a server: they register, "
    "heartbeat with their bin levels, sell drinks (buffering them while offline and uploading the "
    "backlog when back), drain their bins until staff rounds refill them (reporting the refills, but "
    "not always), drop offline now and then, re-register when their token is refused, carry out "
    "remote commands (by heartbeat, pull or WebSocket), and download, check and install the recipe "
    "package the server wants them to run (then sell its recipes, at its prices, drawing its amounts "
    "from the bins). A few misbehave on purpose (see --misbehave) so that every alarm type shows up."
)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# These are already logged by the simulator (warnings, errors); printing them again would double every line.
LOGGED_EVENTS = frozenset({EventKind.FAILED, EventKind.REJECTED, EventKind.CONFLICT})
ALARMING_EVENTS = frozenset(
    {EventKind.REFUSED, EventKind.CRASHED, EventKind.MISBEHAVING, EventKind.INSTALL_FAILED}
)
NO_MISBEHAVIOUR = "none"


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def _not_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return number


def _probability(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return number


def _misbehaviour(value: str) -> tuple[Misbehaviour, float] | None:
    """KIND[:FRACTION] (the fraction of the fleet, default DEFAULT_MISBEHAVE_FRACTION), or `none`."""
    if value == NO_MISBEHAVIOUR:
        return None
    kind, _, fraction = value.partition(":")
    if kind not in set(Misbehaviour):
        raise argparse.ArgumentTypeError(f"KIND is one of {', '.join(Misbehaviour)} (or {NO_MISBEHAVIOUR})")
    try:
        return Misbehaviour(kind), _probability(fraction) if fraction else DEFAULT_MISBEHAVE_FRACTION
    except ValueError as error:
        raise argparse.ArgumentTypeError("FRACTION must be a number between 0 and 1") from error


def misbehaviour_option(values: list[tuple[Misbehaviour, float] | None] | None) -> dict[Misbehaviour, float]:
    """What --misbehave asks for: the demo mix when absent, nothing with `none`, the last word per kind."""
    if values is None:
        return dict(DEMO_MISBEHAVIOUR)
    return {kind: fraction for kind, fraction in filter(None, values)}


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option but where the provisioning secret comes from (and the verbosity)."""
    parser.add_argument("--devices", type=_positive_int, required=True, help="How many machines.")
    parser.add_argument("--base-url", required=True, help="The server, e.g. http://localhost:8000")
    parser.add_argument("--duration", type=_positive_float, help="Stop after this many seconds.")
    parser.add_argument(
        "--heartbeat-interval",
        type=_positive_float,
        help="Heartbeat every S seconds instead of the interval the server asks for (fast demos, tests).",
    )
    parser.add_argument(
        "--offline-probability",
        type=_probability,
        default=DEFAULT_OFFLINE_PROBABILITY,
        help="Chance per heartbeat that a machine drops offline for a while (default %(default)s).",
    )
    parser.add_argument("--serial-prefix", default="SIM", help="Serials: PREFIX-000001 (default SIM).")
    parser.add_argument(
        "--region",
        choices=sorted(REGIONS),
        default=CHINA.code,
        help="Where the shops are: cn sells in CNY on China's clock (UTC+8), paid mostly by WeChat and "
        "Alipay; uk sells at London prices in GBP on London's clock, paid by card, company account "
        "or cash (default %(default)s). The daily curve runs on the region's clock.",
    )
    parser.add_argument("--seed", type=int, help="Make the machines' behaviour reproducible.")
    parser.add_argument(
        "--sales-per-hour",
        type=_not_negative_float,
        default=DEFAULT_SALES_PER_HOUR,
        help="Drinks each machine sells per hour on average over the day, more at breakfast and lunch "
        "than at night (default %(default)s; 0 sells nothing).",
    )
    parser.add_argument(
        "--flat-sales",
        action="store_true",
        help="Sell at the --sales-per-hour rate around the clock instead of following the daily curve.",
    )
    parser.add_argument(
        "--duplicate-probability",
        type=_probability,
        default=DEFAULT_DUPLICATE_PROBABILITY,
        help="Chance that a machine re-sends an order it got an answer for, as after a lost reply "
        "(default %(default)s).",
    )
    parser.add_argument(
        "--refill-round-intervals",
        type=_positive_float,
        default=DEFAULT_REFILL_ROUND_TICKS,
        metavar="N",
        help="Staff come round every N heartbeat intervals (give or take a fifth) and top up the bins "
        f"under {DEFAULT_REFILL_BELOW_SHARE * 100:.0f} %% of their capacity; between rounds they run low, "
        "and an empty one gets a call-out within minutes (default %(default)s: a round every 20 "
        "minutes at the server's 30 s, while a full bin lasts half an hour to two hours).",
    )
    parser.add_argument(
        "--forget-refill-probability",
        type=_probability,
        default=DEFAULT_FORGET_REFILL_PROBABILITY,
        metavar="P",
        help="Chance that the staff do not report a refill: no refilled=true goes up and only the next "
        "heartbeat's higher level shows it (default %(default)s).",
    )
    parser.add_argument(
        "--install-failure-probability",
        type=_probability,
        default=0.0,
        metavar="P",
        help="Chance that installing a recipe package fails on any machine, which then keeps its old "
        "package and reports the failure to an upgrade command (default %(default)s; the fail_installs "
        "misbehaviour makes chosen machines fail every install).",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="Where the machines keep their order counters between runs, so a restarted fleet never "
        "reuses an order id (default: <data dir>/simulator/<serial prefix>-order-numbers.json).",
    )
    parser.add_argument(
        "--command-channel",
        choices=[*CommandChannel, MIXED_CHANNELS],
        default=MIXED_CHANNELS,
        help="How machines collect remote commands: only in heartbeat replies, by pulling every "
        "--pull-interval seconds, over a WebSocket, or %(default)s (the three in turn).",
    )
    parser.add_argument(
        "--pull-interval",
        type=_positive_float,
        default=DEFAULT_PULL_INTERVAL_S,
        help="Seconds between pulls of machines on the pull channel (default %(default)s).",
    )
    parser.add_argument(
        "--misbehave",
        action="append",
        type=_misbehaviour,
        metavar="KIND[:FRACTION]",
        help=f"Make FRACTION of the machines (default {DEFAULT_MISBEHAVE_FRACTION}, at least one) "
        f"misbehave: {', '.join(Misbehaviour)}. Repeatable. Without it, one machine in twenty "
        f"does each (so a demo shows every alarm type); '{NO_MISBEHAVIOUR}' turns it off.",
    )


@dataclass(frozen=True)
class Console:
    """Where a run's lines go: `write` one line, `warning` and `success` style one (plain by default)."""

    write: Callable[[str], None] = print
    warning: Callable[[str], str] = str
    success: Callable[[str], str] = str

    def event(self, event: FleetEvent) -> None:
        if event.kind in LOGGED_EVENTS:
            return
        line = f"{event.serial}  {event.kind:<12}  {event.detail}".rstrip()
        self.write(self.warning(line) if event.kind in ALARMING_EVENTS else line)

    def stats(self, stats: FleetStats, currency: str = CHINA.currency) -> None:
        self.write(self.success("Fleet stopped."))
        for name, value in stats.as_dict().items():
            self.write(f"  {name.replace('_', ' ')}: {value}")
        self.write(f"  sales delivered: {len(stats.delivered)} orders, {stats.delivered_total} {currency}")


def simulate(secret: str, options: dict[str, Any], data_dir: Path, console: Console) -> None:
    """Run the fleet the options describe until it ends or Ctrl-C, then print its counters.

    `options` are the parsed options by dest (with `verbosity`); `data_dir` holds the default state
    file. A fleet that cannot run raises `FleetConfigurationError`, for the caller to report.
    """
    quiet_logging(options["verbosity"])
    if options["verbosity"] >= 1:
        console.write(
            f"Simulating {options['devices']} machines against {options['base_url']} (Ctrl-C stops)."
        )
    state_file = options["state_file"] or default_state_file(data_dir, options["serial_prefix"])
    try:
        stats = asyncio.run(_simulate(secret, options, state_file, console))
    except KeyboardInterrupt:
        # Only where the loop cannot take over SIGINT (Windows); the counters are lost with the loop.
        console.write("Stopped.")
        return
    console.stats(stats, REGIONS[options.get("region", CHINA.code)].currency)


def default_state_file(data_dir: Path, serial_prefix: str) -> Path:
    """Where a fleet of `serial_prefix` keeps its order counters by default (one file per prefix, so
    two fleets never share one)."""
    return data_dir / "simulator" / f"{serial_prefix}-order-numbers.json"


def quiet_logging(verbosity: int) -> None:
    """One line per request (httpx) or per event (the simulator's own log) drowns the event lines."""
    logging.getLogger("httpx").setLevel(logging.INFO if verbosity >= 3 else logging.WARNING)
    logging.getLogger("simulator").setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)


async def _simulate(secret: str, options: dict[str, Any], state_file: Path, console: Console) -> FleetStats:
    """Run the fleet with SIGINT/SIGTERM turned into a clean stop, so the counters survive Ctrl-C."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for stop_signal in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(stop_signal, stop.set)
            installed.append(stop_signal)
    try:
        return await run_fleet(
            options["base_url"],
            secret,
            options["devices"],
            duration_s=options["duration"],
            heartbeat_interval_s=options["heartbeat_interval"],
            offline_probability=options["offline_probability"],
            serial_prefix=options["serial_prefix"],
            seed=options["seed"],
            on_event=console.event if options["verbosity"] >= 1 else None,
            stop=stop,
            sales_per_hour=options["sales_per_hour"],
            sales_curve=FLAT_SALES_CURVE if options["flat_sales"] else DAILY_SALES_CURVE,
            duplicate_probability=options["duplicate_probability"],
            state_file=state_file,
            command_channels=options["command_channel"],
            pull_interval_s=options["pull_interval"],
            refill_round_intervals=options["refill_round_intervals"],
            forget_refill_probability=options["forget_refill_probability"],
            install_failure_probability=options["install_failure_probability"],
            misbehave=misbehaviour_option(options["misbehave"]),
            region=REGIONS[options.get("region", CHINA.code)],
        )
    finally:
        for stop_signal in installed:
            loop.remove_signal_handler(stop_signal)
