"""How a machine collects its commands besides heartbeat replies: pulling `commands/pending`, or a
WebSocket held open and reconnected with backoff."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import quote

from websockets.exceptions import WebSocketException

from simulator.client import REQUEST_TIMEOUT, USER_AGENT, _require
from simulator.session import EventKind, FleetSession
from simulator.vocabulary import CommandChannel

logger = logging.getLogger(__name__)
SOCKET_BACKOFF_BASE_S = 1.0
SOCKET_BACKOFF_CAP_S = 30.0
# A socket that stayed open this long was healthy: the next reconnection starts from the shortest delay.
SOCKET_STABLE_S = 10.0


class Channels:
    """The pull loop and the socket: what runs beside the life loop for the pull and WebSocket channels."""

    def _start_channel(self, session: FleetSession) -> list[asyncio.Task[None]]:
        loops = {CommandChannel.PULL: self.poll_commands, CommandChannel.WEBSOCKET: self.hold_socket}
        loop = loops.get(self.command_channel)
        if loop is None:
            return []
        return [
            asyncio.create_task(self._guarded(session, loop), name=f"{self.serial} {self.command_channel}")
        ]

    async def pull_commands(self, session: FleetSession) -> None:
        reply = await session.api.request("GET", self.path("commands/pending"), token=self.token)
        session.stats.pulls_sent += 1
        self.receive_commands(session, _require(reply.data, "commands", list), CommandChannel.PULL)

    async def poll_commands(self, session: FleetSession) -> None:
        """The pull channel: ask for commands every pull interval (and the tick asks before heartbeats)."""
        while not await session.pause(session.settings.pull_interval_s * self.rng.uniform(0.9, 1.1)):
            if self.is_reachable and self.device_id is not None:
                await self._attempt(session, self.pull_commands)

    def socket_url(self, session: FleetSession) -> str:
        if self.device_id is None:
            raise RuntimeError(f"{self.serial} has no device_id: register first")
        return f"{session.socket_url}/ws/devices/{quote(self.device_id, safe='')}/"

    async def hold_socket(self, session: FleetSession) -> None:
        """The WebSocket channel: hold /ws/devices/{id}/ open while the machine can talk, and take every
        pushed command. A refused or dropped socket is opened again after a capped, jittered backoff
        that starts over once a socket has stayed up for SOCKET_STABLE_S."""
        failures = 0
        while not session.stopping.is_set():
            if not self.is_reachable or self.token is None:
                if await session.pause(0.2):
                    return
                continue
            opened_at: float | None = None
            try:
                async with session.connect_socket(
                    self.socket_url(session),
                    additional_headers={"Authorization": f"Device {self.token}"},
                    user_agent_header=USER_AGENT,
                    proxy=None,
                    compression=None,
                    open_timeout=REQUEST_TIMEOUT.connect,
                ) as socket:
                    opened_at = self._clock()
                    self._socket = socket
                    session.stats.websocket_connections += 1
                    session.emit(EventKind.SOCKET, self.serial, "open")
                    async for message in socket:
                        self._take_push(session, message)
            except (OSError, TimeoutError, WebSocketException) as error:
                logger.debug("%s: socket: %s: %s", self.serial, type(error).__name__, error)
            finally:
                self._socket = None
            if session.stopping.is_set():
                return
            if opened_at is not None:
                session.stats.websocket_drops += 1
                if self._clock() - opened_at >= SOCKET_STABLE_S:
                    failures = 0
            failures += 1
            delay = min(SOCKET_BACKOFF_CAP_S, SOCKET_BACKOFF_BASE_S * 2 ** min(failures - 1, 6))
            delay *= self.rng.uniform(0.5, 1.0)
            if opened_at is not None or failures == 1:
                session.emit(EventKind.SOCKET, self.serial, f"closed; opening again in {delay:.1f}s")
            if await session.pause(delay):
                return

    def _take_push(self, session: FleetSession, message: str | bytes) -> None:
        try:
            push = json.loads(message)
        except ValueError:
            logger.warning("%s: the socket sent something that is not JSON: %r", self.serial, message[:200])
            return
        if isinstance(push, dict) and push.get("type") == "command" and isinstance(push.get("command"), dict):
            self.receive_commands(session, [push["command"]], CommandChannel.WEBSOCKET)

    def _drop_socket(self) -> None:
        """Close the socket now (going silent, restarting); `hold_socket` waits until the machine talks."""
        if self._socket is not None:
            closing = asyncio.ensure_future(self._socket.close())
            self._closing_sockets.add(closing)
            closing.add_done_callback(self._closing_sockets.discard)
