"""Remote commands on the machine: taking them as they come (never carrying one out twice), carrying
them out one at a time, for real, and reporting their results."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from simulator.client import Reply, _checked_payload, format_timestamp
from simulator.errors import FleetStopping, ProtocolError, ProtocolViolation, Rejected, Unauthorized
from simulator.packages import PackageOffer
from simulator.physics import SUGAR_MATERIAL
from simulator.sales import LARGE_CUP_SCALE, SUGAR_PER_LEVEL_G, Product
from simulator.session import EventKind, FleetSession
from simulator.vocabulary import (
    BUSY,
    CLEAN_PROGRAMS,
    DOOR_ACTUATION_S,
    IGNORED,
    IN_HAND,
    PAYLOAD_FIELDS,
    REMOTE_BREW_S,
    RESTART_SILENCE_S,
    SIMULATED_FAULT_S,
    SYNC_PARTS,
    WAITS_FOR_THE_CUSTOMER,
    BadPayload,
    CommandChannel,
    CommandOutcome,
    Misbehaviour,
)

logger = logging.getLogger(__name__)
# Every command id a machine has carried out is remembered (a redelivery is never carried out twice),
# up to this many; real machines keep such a log on flash.
REMEMBERED_COMMANDS = 1000


class Commands:
    """Every command id received is remembered with what became of it; final results wait in
    `results_waiting` until the server has acknowledged them."""

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
            if self.product(payload["product_id"]) is None:
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
        """What one remote test cup takes from the bins: the product's cup, scaled by size, plus sugar
        (for the built-in drinks; a package's recipe is made as it says)."""
        options = options if isinstance(options, dict) and product.takes_options else {}
        scale = LARGE_CUP_SCALE if options.get("size") == "large" else 1.0
        needs = {material: amount * scale for material, amount in product.materials.items()}
        sugar = options.get("sugar")
        if isinstance(sugar, int) and not isinstance(sugar, bool) and sugar > 0:
            needs[SUGAR_MATERIAL] = needs.get(SUGAR_MATERIAL, 0.0) + SUGAR_PER_LEVEL_G * sugar
        return needs

    async def _make_product(self, session: FleetSession, payload: dict[str, Any]) -> CommandOutcome:
        """A remote test brew: the bins drain and the machine shows `brewing`, but nothing is sold."""
        product = self.product(payload["product_id"])
        if product is None:  # a package without it was installed since the command was accepted
            return CommandOutcome("failed", error=f"no product {payload['product_id']!r} on this machine")
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
        """Download the package, check its SHA-256, install it: the next heartbeat reports its version.
        Tried at once, whatever the backoff of an earlier failure: the operator asked for it."""
        offer = PackageOffer.commanded(payload)
        error = await self.install_package(session, offer)
        if error is not None:
            return CommandOutcome("failed", error=error)
        return CommandOutcome(
            "succeeded", {"package_id": offer.package_id, "package_version": self.package_version}
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
