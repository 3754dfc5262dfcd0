"""Pushing live updates to staff WebSockets, scoped by merchant.

Every event goes to the merchant's group and to the platform group (platform staff see every
merchant). Callers use `broadcast_after_commit` inside the transaction that caused the change, so a
browser never hears of a change that was rolled back.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

PLATFORM_GROUP = "live.platform"


def merchant_group(merchant_id: int) -> str:
    return f"live.merchant.{merchant_id}"


def user_group(user_id: int) -> str:
    return f"live.user.{user_id}"


def broadcast_to_user(user_id: int, event: str, payload: dict) -> None:
    """For what belongs to one person (their export's progress), not to a merchant."""
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(
            user_group(user_id), {"type": "live.event", "event": event, "payload": payload}
        )


def broadcast(merchant_id: int, event: str, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "live.event", "event": event, "merchant_id": merchant_id, "payload": payload}
    send = async_to_sync(layer.group_send)
    send(merchant_group(merchant_id), message)
    send(PLATFORM_GROUP, message)


def broadcast_after_commit(merchant_id: int, event: str, payload: dict) -> None:
    transaction.on_commit(lambda: broadcast(merchant_id, event, payload))
