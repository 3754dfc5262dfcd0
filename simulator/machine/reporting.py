"""The machine's own calls: registering, heartbeats (and what their replies ask for), and its bins'
refills and levels."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from simulator.client import API_PREFIX, REGISTER_PATH, Reply, _require, format_timestamp
from simulator.errors import ProtocolError, ProtocolViolation, Rejected, Unauthorized
from simulator.session import EventKind, FleetSession
from simulator.vocabulary import CommandChannel

MIN_SERVER_HEARTBEAT_INTERVAL_S = 1.0


class Reporting:
    """Registration, heartbeats and material reports: one small method per protocol call."""

    def path(self, suffix: str) -> str:
        if self.device_id is None:
            raise RuntimeError(f"{self.serial} has no device_id: register first")
        return f"{API_PREFIX}/devices/{quote(self.device_id, safe='')}/{suffix}"

    def interval_s(self, session: FleetSession) -> float:
        return session.settings.heartbeat_interval_s or self.server_interval_s

    async def register(self, session: FleetSession) -> Reply:
        """One registration call; keeps the new device_id and token (a known serial gets a new token)."""
        reply = await session.api.request(
            "POST", REGISTER_PATH, body=self.registration_body(session.provisioning_secret)
        )
        self.device_id = _require(reply.data, "device_id", str)
        self.token = _require(reply.data, "token", str)
        self._adopt_interval(reply.data)
        return reply

    async def heartbeat(self, session: FleetSession) -> None:
        try:
            reply = await session.api.request(
                "POST", self.path("status"), body=self.heartbeat_body(), token=self.token
            )
        except ProtocolError:
            session.stats.heartbeats_failed += 1
            raise
        session.stats.heartbeats_sent += 1
        self._adopt_heartbeat_reply(session, reply.data)

    async def report_materials(self, session: FleetSession) -> None:
        """Report pending refills; they stay pending through outages but a refusal drops them."""
        refilled = set(self.unreported_refills)
        try:
            await session.api.request(
                "POST", self.path("materials/report"), body=self.materials_body(refilled), token=self.token
            )
        except Rejected as error:
            if not isinstance(error, Unauthorized):
                self.unreported_refills -= refilled
            raise
        self.unreported_refills -= refilled
        session.stats.material_reports_sent += 1
        session.emit(EventKind.REFILLED, self.serial, "bins " + ", ".join(map(str, sorted(refilled))))

    def note_forgotten_refills(self, session: FleetSession) -> None:
        """Count and announce the refills the staff did not report: the server only sees the level rise."""
        for index in self.forgotten_refills:
            session.stats.refills_unreported += 1
            session.emit(
                EventKind.REFILL_UNREPORTED,
                self.serial,
                f"bin {index} ({self._bin_of_index(index)}) refilled without a report: "
                "only the heartbeat's level shows it",
            )
        self.forgotten_refills.clear()

    def _adopt_interval(self, data: dict[str, Any]) -> None:
        interval = data.get("heartbeat_interval_s")
        if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
            self.server_interval_s = max(MIN_SERVER_HEARTBEAT_INTERVAL_S, float(interval))

    def _adopt_heartbeat_reply(self, session: FleetSession, data: Any) -> None:
        if not isinstance(data, dict):
            raise ProtocolViolation("heartbeat reply data is not an object")
        self._adopt_interval(data)
        commands = data.get("commands") or []
        package = data.get("desired_package")
        if not isinstance(commands, list) or not isinstance(package, dict | None):
            raise ProtocolViolation("heartbeat reply: commands not a list or desired_package not an object")
        self.desired_package = package
        if commands:
            self.receive_commands(session, commands, CommandChannel.HEARTBEAT)

    async def report_levels(self, session: FleetSession) -> None:
        """Every bin's level now (a `sync` of materials), none flagged as a refill."""
        body = {
            "sent_at": format_timestamp(self.machine_time()),
            "bins": [level.as_protocol(refilled=False) for level in self.bins],
        }
        await session.api.request("POST", self.path("materials/report"), body=body, token=self.token)
        session.stats.material_reports_sent += 1
