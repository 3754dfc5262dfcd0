"""The machine's WebSocket, /ws/devices/{device_id}/ (protocol: "The machine's WebSocket").

Authenticated like every machine call, by `Authorization: Device <token>` on the upgrade request. The
server pushes `{"type": "command", "command": ...}` the moment a command is created for the machine;
commands pushed here are leased exactly as by a pull, so a machine never gets one twice.
"""

import asyncio
import contextlib

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from coffeeshop.protocol.auth import MalformedAuthorization, device_token_of
from coffeeshop.socket_logs import name_the_caller
from coffeeshop.socket_shutdown import ClosesOnShutdown
from devices.services import identify_device
from operations.services.commands import device_group, lease_deliverable_commands

UNAUTHORIZED, FORBIDDEN = 4401, 4403
RECHECK_S = 10


def _device_token(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            try:
                return device_token_of(value.decode("latin-1"))
            except MalformedAuthorization:
                return None
    return None


class MachineSocketConsumer(ClosesOnShutdown, AsyncJsonWebsocketConsumer):
    async def connect(self):
        token = _device_token(self.scope)
        identity = await database_sync_to_async(identify_device)(token) if token else None
        if identity is None:
            await self.close(code=UNAUTHORIZED)
            return
        name_the_caller(self.scope, device_id=identity.device_id, merchant_id=identity.merchant_id)
        if str(identity.device_id) != str(self.scope["url_route"]["kwargs"]["device_id"]):
            await self.close(code=FORBIDDEN)
            return
        self.identity = identity
        self.group = device_group(identity.device_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.deliver()
        self.rechecks = asyncio.create_task(self.recheck_periodically())

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if hasattr(self, "rechecks"):
            self.rechecks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.rechecks

    async def recheck_periodically(self):
        """A retry after its backoff, or a command a busy machine deferred, comes due with nobody to
        announce it: look again now and then (cheap: with Redis only when the machine's flag is set)."""
        while True:
            await asyncio.sleep(RECHECK_S)
            await self.deliver()

    async def commands_available(self, event):
        await self.deliver()

    async def receive_json(self, content, **kwargs):
        """Machines report results over HTTP; anything they send here is ignored."""

    async def deliver(self):
        commands = await database_sync_to_async(lease_deliverable_commands)(
            self.identity.device_id, state=None, channel="websocket"
        )
        for command in commands:
            await self.send_json({"type": "command", "command": command})
