"""The words machine and simulator share: how commands come (`CommandChannel`), what a machine does
wrong on purpose (`Misbehaviour`, `EpisodeTiming`), how a command ends (`CommandOutcome`), and how long
each command takes and what its payload must hold."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class CommandChannel(enum.StrEnum):
    """How a machine collects its commands (protocol: Commands); results always go up over HTTP."""

    HEARTBEAT = "heartbeat"  # only in the replies to its heartbeats
    PULL = "pull"  # GET commands/pending every pull interval, and just before each heartbeat
    WEBSOCKET = "websocket"  # pushed over /ws/devices/{id}/, held open and reconnected with backoff


MIXED_CHANNELS = "mixed"
DEFAULT_PULL_INTERVAL_S = 5.0


class Misbehaviour(enum.StrEnum):
    """What a machine can be told to do wrong, and the alarm each one makes the back office raise."""

    FAIL_COMMANDS = "fail_commands"  # reports every command failed: command_failed / upgrade_failed
    IGNORE_COMMANDS = "ignore_commands"  # never reports: retried, then timed out: command_failed
    GO_SILENT = "go_silent"  # stops calling for longer than the offline timeout: offline
    OVERHEAT = "overheat"  # the boiler climbs above 100 °C, then recovers: temperature_out_of_range
    RUN_DRY = "run_dry"  # one bin runs low, then empty, and is refilled later: material_low / _empty
    # downloads and checks recipe packages, then fails to install them, keeping its old package: a
    # rollout counts it failed (halting at its failure threshold), upgrade_failed by command
    FAIL_INSTALLS = "fail_installs"
    # every draw from its bins takes LEAK_SHARE more than the cup needs (a leak, a grinder dosing
    # high): the back office's variance flags its bins once it books the sales by recipe. Only on
    # request (`--misbehave leak`), never in the demo mix: it would flag bins nobody broke.
    LEAK = "leak"


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
# What `simulate-fleet` (and `python -m simulator`) does without --misbehave: one machine in twenty
# (at least one) per kind, so a demo fleet shows every alarm type.
DEMO_MISBEHAVIOUR: dict[Misbehaviour, float] = {
    kind: 0.05 for kind in Misbehaviour if kind is not Misbehaviour.LEAK
}
LEAK_SHARE = 0.3
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
