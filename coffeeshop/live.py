"""Pushing live updates to WebSockets: staff pages scoped by merchant, and machines.

Every staff event goes to the merchant's group and to the platform group (platform staff see every
merchant). Callers use `broadcast_after_commit` inside the transaction that caused the change, so a
browser never hears of a change that was rolled back.

With Redis, sends go through one event loop per process, running in a background thread: from a
sync (gunicorn) worker, `async_to_sync` would build a new event loop and a new Redis connection for
every send, which cost more than the rest of an order's ingest. The send is not awaited by the
request; a failure is logged. Without Redis the in-memory layer lives in the server's own loop, so
sends go there (`async_to_sync`) as before.
"""

import asyncio
import logging
import os
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from coffeeshop.redis import REDIS_OUTAGE_ERRORS, redis_failed, redis_is_down

logger = logging.getLogger(__name__)
PLATFORM_GROUP = "live.platform"
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def merchant_group(merchant_id: int) -> str:
    return f"live.merchant.{merchant_id}"


def user_group(user_id: int) -> str:
    return f"live.user.{user_id}"


def _background_loop() -> asyncio.AbstractEventLoop:
    """This process's sending loop; a forked child (gunicorn, Celery) starts its own, as threads do
    not survive a fork."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop.is_closed() or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="live-sends", daemon=True).start()
        return _loop


async def _send_all(layer, sends: list[tuple[str, dict]]) -> None:
    for group, message in sends:
        await layer.group_send(group, message)


def _report_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        if isinstance(future.exception(), REDIS_OUTAGE_ERRORS):
            redis_failed(future.exception())
        logger.error("a live update could not be sent: %r", future.exception())


def send_to_groups(sends: list[tuple[str, dict]]) -> None:
    """Send each (group, message); the one way every app pushes to a WebSocket group."""
    layer = get_channel_layer()
    if layer is None or not sends:
        return
    if settings.REDIS_URL:
        if redis_is_down():
            return  # live pushes are at most once; pages catch up on their next event or reload
        asyncio.run_coroutine_threadsafe(_send_all(layer, sends), _background_loop()).add_done_callback(
            _report_failure
        )
    else:
        async_to_sync(_send_all)(layer, sends)


def broadcast_to_user(user_id: int, event: str, payload: dict) -> None:
    """For what belongs to one person (their export's progress), not to a merchant."""
    send_to_groups([(user_group(user_id), {"type": "live.event", "event": event, "payload": payload})])


def broadcast(merchant_id: int, event: str, payload: dict) -> None:
    message = {"type": "live.event", "event": event, "merchant_id": merchant_id, "payload": payload}
    send_to_groups([(merchant_group(merchant_id), message), (PLATFORM_GROUP, message)])


def broadcast_after_commit(merchant_id: int, event: str, payload: dict) -> None:
    transaction.on_commit(lambda: broadcast(merchant_id, event, payload))
