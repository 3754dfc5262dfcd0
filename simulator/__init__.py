"""A fleet of simulated coffee machines that speaks machine protocol v1 over HTTP, and nothing else.

It imports no Django code on purpose: it is a stand-in for real machines, so it must be pointable at
any server (a dev box, staging, a test's live server) and must only know what a machine knows: the base
URL, the merchant's provisioning secret and the protocol. Each machine is an asyncio task that
registers, heartbeats at the interval the server asks for (every heartbeat carries every bin's level),
now and then drops offline, and re-registers when its token is refused. Between heartbeats it sells
drinks: a weighted menu and payment mix, more customers at breakfast and lunch than at night. A sale
goes up at once; while the machine is offline it is buffered and the backlog goes up when the machine
is back. A sale without an answer is kept and sent again later (the server may have stored it:
"duplicate"), and now and then a machine re-sends an answered order on purpose (a lost reply), so
duplicates really happen.

Bins: every drink and rinse drains them, fast (a tick makes about a third of a drink besides the sales:
a full bin lasts half an hour to two hours), and nobody rescues a bin that is only low. Staff come
round on a schedule (`RefillRounds`: every 40 ticks by default, about 20 minutes) and top up the bins
under 30 %; an empty bin gets a call-out within minutes. The fleet starts mid-life, some bins already
low. So bins run under the server's 15 % low threshold regularly and now and then empty: a demo fleet
shows material_low alarms from its first heartbeats, and material_empty ones and their clearing within
minutes. A refill goes up as a materials report with `refilled: true`, except the one in ten the staff
forget to report (an `unreported` event, counted in `refills_unreported`): then only the next
heartbeat's higher level shows it, and the server has to infer the refill from the rise.

Commands: each machine collects them by one channel (`CommandChannel`): only in its heartbeat replies,
by pulling `commands/pending` every few seconds, or over its WebSocket (`/ws/devices/{id}/`, held
open and reconnected with backoff). Whatever the channel, commands in a heartbeat reply are carried
out too (the server leased them to the machine), and results always go up over HTTP: `accepted`,
then `succeeded`/`failed` (`rejected` or `busy` when the machine will not or cannot start). The
machine carries out one command at a time, for real: a remote test brew drains the bins and shows
`brewing` but sells nothing, a restart goes silent and resets the uptime, a locked machine refuses
to brew. A command id it has already carried out is never carried out again: a redelivery (the
result was lost) gets the stored final result re-reported.

Recipe packages: a machine leaves the factory with the built-in menu (`MENU`, package version
2026.1.0). When a heartbeat reply's `desired_package` names another version, or an `upgrade` command
comes, it downloads the package from its `url` (with its token, on the server's host), checks its size
and SHA-256 and that it is the protocol's package format, installs it (it takes a second or two) and
reports its `package_version` from the next heartbeat on; an `upgrade` command gets `accepted`, then
`succeeded` or `failed` with why. Whatever fails (the download, a mismatch, the install itself), the
machine keeps the package it had, and tries an offered package again only after a backoff (two
heartbeat intervals, doubling up to 64), never every tick; a command is tried at once. Once it runs a
package it sells that package's recipes and nothing else: at their prices, each order line carrying
the recipe's `recipe_version`, each cup drawing from the bins what the recipe's steps say (grind and
add: the material's amount; brew and pour: the water from the WATER bin), with no sizes or sugar, which
the package format does not know. `install_failure_probability` makes any install fail now and then.

Misbehaviour (`Misbehaviour`), given to some machines on purpose so that every alarm the back office
raises can be seen: failing or ignoring commands, going silent for longer than the offline timeout,
overheating, running a bin dry, and failing every package install (`fail_installs`: the package is
downloaded and checked, then not installed, so a rollout's canary fails and halts by itself). The
episodic ones come and go on a schedule (`EpisodeTiming`).

The modules, by concept: `vocabulary` (channels, misbehaviours, command outcomes and timings),
`errors`, `client` (the transport and the checks on replies), `physics` (bins and their refill rounds,
boiler, episodes), `sales` (menu, orders, the daily curve), `packages` (offers, the checks on a
package's bytes, installed recipes), `session` (what a fleet run shares:
settings, counters, events), `machine` (`SimulatedMachine`, composed of its concerns) and `fleet`
(`run_fleet`). `cli` holds the command-line options, shared by `python -m simulator` and `manage.py
simulate-fleet`. This package re-exports the names its users need.
"""

from simulator.client import ProtocolClient, Reply, format_timestamp, parse_retry_after
from simulator.errors import (
    FleetConfigurationError,
    MachineStopped,
    ProtocolError,
    ProtocolViolation,
    Rejected,
    Unauthorized,
    Unreachable,
)
from simulator.fleet import build_fleet, choose_misbehaving, command_channels_of, fleet_serial, run_fleet
from simulator.machine import SimulatedMachine
from simulator.machine.body import FACTORY_PACKAGE_VERSION, MACHINE_STATES
from simulator.packages import InstalledPackage, PackageOffer, PackageRefused, read_package
from simulator.physics import (
    DEFAULT_BINS,
    DEFAULT_FORGET_REFILL_PROBABILITY,
    DEFAULT_REFILL_ROUND_TICKS,
    BinLevel,
    BinSpec,
    BoilerTemperature,
    Episodes,
    RefillRounds,
)
from simulator.sales import (
    BACKLOG_LIMIT,
    CHINA,
    CURRENCY,
    DAILY_SALES_CURVE,
    DEFAULT_DUPLICATE_PROBABILITY,
    DEFAULT_SALES_PER_HOUR,
    FLAT_SALES_CURVE,
    LARGE_CUP_SCALE,
    MENU,
    PAYMENT_METHODS,
    REGIONS,
    UK,
    OrderNumbers,
    Product,
    Region,
    SaleOrder,
    backlog_chunks,
    sales_rate_per_hour,
)
from simulator.session import (
    DEFAULT_OFFLINE_PROBABILITY,
    EventKind,
    FleetEvent,
    FleetSession,
    FleetSettings,
    FleetStats,
    OrderRecord,
)
from simulator.vocabulary import (
    DEFAULT_MISBEHAVE_FRACTION,
    DEFAULT_PULL_INTERVAL_S,
    DEMO_MISBEHAVIOUR,
    MIXED_CHANNELS,
    CommandChannel,
    CommandOutcome,
    EpisodeTiming,
    Misbehaviour,
)

__all__ = [
    "BACKLOG_LIMIT",
    "CHINA",
    "CURRENCY",
    "DAILY_SALES_CURVE",
    "DEFAULT_BINS",
    "DEFAULT_DUPLICATE_PROBABILITY",
    "DEFAULT_FORGET_REFILL_PROBABILITY",
    "DEFAULT_MISBEHAVE_FRACTION",
    "DEFAULT_OFFLINE_PROBABILITY",
    "DEFAULT_PULL_INTERVAL_S",
    "DEFAULT_REFILL_ROUND_TICKS",
    "DEFAULT_SALES_PER_HOUR",
    "DEMO_MISBEHAVIOUR",
    "FACTORY_PACKAGE_VERSION",
    "FLAT_SALES_CURVE",
    "LARGE_CUP_SCALE",
    "MACHINE_STATES",
    "MENU",
    "MIXED_CHANNELS",
    "PAYMENT_METHODS",
    "REGIONS",
    "UK",
    "BinLevel",
    "BinSpec",
    "BoilerTemperature",
    "CommandChannel",
    "CommandOutcome",
    "EpisodeTiming",
    "Episodes",
    "EventKind",
    "FleetConfigurationError",
    "FleetEvent",
    "FleetSession",
    "FleetSettings",
    "FleetStats",
    "InstalledPackage",
    "MachineStopped",
    "Misbehaviour",
    "OrderNumbers",
    "OrderRecord",
    "PackageOffer",
    "PackageRefused",
    "Product",
    "ProtocolClient",
    "ProtocolError",
    "ProtocolViolation",
    "RefillRounds",
    "Region",
    "Rejected",
    "Reply",
    "SaleOrder",
    "SimulatedMachine",
    "Unauthorized",
    "Unreachable",
    "backlog_chunks",
    "build_fleet",
    "choose_misbehaving",
    "command_channels_of",
    "fleet_serial",
    "format_timestamp",
    "parse_retry_after",
    "read_package",
    "run_fleet",
    "sales_rate_per_hour",
]
