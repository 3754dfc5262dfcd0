"""One simulated machine (`SimulatedMachine`), composed of its concerns: body (state, physics, drinks,
bodies), reporting, selling, commands, command channels and its life loop."""

from __future__ import annotations

from simulator.machine.body import Body
from simulator.machine.channels import Channels
from simulator.machine.commands import Commands
from simulator.machine.lifecycle import Lifecycle
from simulator.machine.reporting import Reporting
from simulator.machine.selling import Selling

__all__ = ["SimulatedMachine"]


class SimulatedMachine(Lifecycle, Channels, Commands, Selling, Reporting, Body):
    """One machine: its simulated physics (pure, steppable in tests) and its protocol calls.

    The life loop is `run`: register, then per tick maybe drop offline (or go silent when
    misbehaving), `step` the physics (the staff's refill rounds too), announce the refills nobody
    reported, upload waiting orders, report the other refills, send waiting command results, pull
    (on the pull channel), heartbeat, then `trade` until the next tick: customers arrive at the daily
    curve's rate and each sale goes up at once. Beside it run the machine's helpers: its
    channel's loop (`poll_commands` or `hold_socket`) and, while it has commands, one worker that
    carries them out in the order they came. Each protocol call is one small method.

    Orders: a sale joins `outbox` and leaves it only when the server has answered for it (accepted,
    duplicate or rejected). Offline, sales wait there; a sale whose call failed stays there; whatever
    waits goes up as a backlog, oldest first, at the next tick (or the next sale).

    Commands: every command id received is remembered with what became of it (`outcome_of`); a final
    result waits in `results_waiting` until the server has acknowledged it.
    """
