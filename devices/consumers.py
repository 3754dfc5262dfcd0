"""The staff live socket, /ws/live/: device status (and later alarms, orders) as it happens.

Authenticated by the admin session, scoped by merchant: a user joins the groups of their merchants
only (platform staff join the platform group), so a push never reaches anyone outside its merchant.
Without Redis there is no channel layer shared between processes (the Celery worker cannot reach the
web server's memory), so the socket also polls the database for machines that changed.
"""

import asyncio
import contextlib

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from accounts.models import Capability
from accounts.tenancy import merchant_ids_for
from coffeeshop.live import PLATFORM_GROUP, merchant_group, user_group
from coffeeshop.socket_logs import name_the_caller
from coffeeshop.socket_shutdown import ClosesOnShutdown
from devices.selectors import changed_device_payloads

UNAUTHORIZED_CLOSE_CODE = 4401


class StaffLiveConsumer(ClosesOnShutdown, AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if not (
            user and user.is_authenticated and getattr(user, "is_staff", False) and user.can(Capability.VIEW)
        ):
            await self.close(code=UNAUTHORIZED_CLOSE_CODE)
            return
        merchant_ids = await database_sync_to_async(merchant_ids_for)(user)
        only_merchant = next(iter(merchant_ids)) if merchant_ids and len(merchant_ids) == 1 else None
        name_the_caller(self.scope, user_id=user.pk, merchant_id=only_merchant)
        self.live_groups = (
            [PLATFORM_GROUP] if merchant_ids is None else [merchant_group(i) for i in merchant_ids]
        ) + [user_group(user.pk)]
        for group in self.live_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json(
            {"type": "hello", "merchant_ids": None if merchant_ids is None else sorted(merchant_ids)}
        )
        self.poller = asyncio.create_task(self.poll_database()) if not settings.REDIS_URL else None

    async def disconnect(self, code):
        for group in getattr(self, "live_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        poller = getattr(self, "poller", None)
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def live_event(self, message):
        await self.send_json({"type": message["event"], "data": message["payload"]})

    async def poll_database(self):
        since = timezone.now()
        while True:
            await asyncio.sleep(settings.LIVE_POLL_INTERVAL_S)
            payloads, since = await database_sync_to_async(changed_device_payloads)(self.scope["user"], since)
            for payload in payloads:
                await self.send_json({"type": "device.status", "data": payload})
