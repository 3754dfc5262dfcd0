"""What the machines of one fleet run share (`FleetSession`): the client, the secret, the knobs
(`FleetSettings`), the counters (`FleetStats`) and the events an operator sees (`FleetEvent`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from websockets.asyncio.client import connect as websocket_connect

from simulator.client import ProtocolClient
from simulator.physics import RefillRounds
from simulator.sales import (
    DAILY_SALES_CURVE,
    DEFAULT_DUPLICATE_PROBABILITY,
    DEFAULT_SALES_PER_HOUR,
    OrderNumbers,
    peak_sales_per_hour,
    sales_rate_per_hour,
)
from simulator.vocabulary import DEFAULT_PULL_INTERVAL_S

logger = logging.getLogger(__name__)
DEFAULT_OFFLINE_PROBABILITY = 0.01


class EventKind(enum.StrEnum):
    REGISTERED = "registered"
    REREGISTERED = "reregistered"
    REFUSED = "refused"
    OFFLINE = "offline"
    BACK = "back"
    REFILLED = "refilled"
    REFILL_UNREPORTED = "unreported"
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

    Bins: `refill_rounds` counts the staff's rounds (added up when the fleet stops); `refills_unreported`
    the refills they forgot to report (no `refilled: true` went up; only the heartbeats' levels show them).
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
    refill_rounds: int = 0
    refills_unreported: int = 0
    delivered: list[OrderRecord] = field(default_factory=list, repr=False)
    unsent: list[OrderRecord] = field(default_factory=list, repr=False)

    LEDGERS = frozenset({"delivered", "unsent"})

    def as_dict(self) -> dict[str, int]:
        """The counters only (the ledgers are lists of orders)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self.LEDGERS}

    @property
    def delivered_total(self) -> Decimal:
        return sum((record.total for record in self.delivered), Decimal("0.00"))


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
    refill_rounds: RefillRounds = field(default_factory=RefillRounds)

    def sales_rate_per_hour(self, local_time: datetime) -> float:
        return sales_rate_per_hour(local_time, self.sales_per_hour, self.sales_curve)

    @property
    def peak_sales_per_hour(self) -> float:
        return peak_sales_per_hour(self.sales_per_hour, self.sales_curve)


EventSink = Callable[[FleetEvent], None]
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
