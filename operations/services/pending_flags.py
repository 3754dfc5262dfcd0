"""The Redis flag a machine's quiet heartbeat checks: "this machine may have commands waiting".

Set when a command for the machine is created or retried, cleared when none is pending any more. A
quiet heartbeat (one Redis round trip) answers without commands only while the flag is unset, so a
flag that is wrongly set costs one database query, and one wrongly unset would hide a command: every
write is therefore made so that an outage errs towards "set". Without Redis there is no flag and
every heartbeat asks the database.
"""

from django.db import transaction

from coffeeshop.redis import REDIS_OUTAGE_ERRORS, get_redis, key, outage_tolerated, redis_failed
from operations.models import CommandStatus, RemoteCommand


def pending_commands_key(device_id) -> str:
    """The Redis key set while a machine may have commands waiting: a quiet heartbeat checks it."""
    return key("cmd", "has", device_id)


def flag_pending(device_ids) -> None:
    redis = get_redis()
    device_ids = list(device_ids)
    if redis is not None and device_ids:
        transaction.on_commit(lambda: _set_flags(redis, device_ids))


def _set_flags(redis, device_ids) -> None:
    with outage_tolerated():  # missed: reflag_pending_commands sets it when Redis answers again
        redis.mset({pending_commands_key(i): 1 for i in device_ids})


def forget_flag_unless_pending(device_id: int) -> None:
    redis = get_redis()
    if (
        redis is not None
        and not RemoteCommand.objects.filter(device_id=device_id, status=CommandStatus.PENDING).exists()
    ):
        with outage_tolerated():  # a flag left set costs one query, no more
            redis.delete(pending_commands_key(device_id))


def may_have_commands(device_id: int) -> bool:
    redis = get_redis()
    if redis is None:
        return True
    try:
        return bool(redis.exists(pending_commands_key(device_id)))
    except REDIS_OUTAGE_ERRORS as error:
        redis_failed(error)
        return True


def reflag_pending_commands(redis) -> None:
    """When Redis answers again after an outage (a recovery hook): commands created meanwhile could not
    set their machine's flag, so every machine with a pending command is flagged again."""
    device_ids = set(
        RemoteCommand.objects.filter(status=CommandStatus.PENDING).values_list("device_id", flat=True)
    )
    if device_ids:
        redis.mset({pending_commands_key(i): 1 for i in device_ids})
