"""A machine's life: register, then tick (physics, uploads, reports, heartbeat) and trade until the
fleet stops; drop offline or go silent now and then, re-register when the token is refused."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from simulator.client import Reply
from simulator.errors import (
    FleetStopping,
    MachineStopped,
    ProtocolError,
    ProtocolViolation,
    Rejected,
    Unauthorized,
    Unreachable,
)
from simulator.session import EventKind, FleetSession
from simulator.vocabulary import CommandChannel

logger = logging.getLogger(__name__)


class Lifecycle:
    """The life loop and its helpers; a helper's bug is logged, never silent."""

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
        self.note_forgotten_refills(session)
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

    async def _stop_helpers(self, helpers: list[asyncio.Task[None]]) -> None:
        tasks = [*helpers, *([self._worker] if self._worker else []), *self._closing_sockets]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
