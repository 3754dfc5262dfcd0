from django.conf import settings
from django.core.checks import Error, Warning, register
from redis.exceptions import ResponseError

from coffeeshop.redis import REDIS_OUTAGE_ERRORS, redis_client


@register(deploy=True)
def device_tokens_enabled(app_configs, **kwargs):
    if not settings.ENABLE_DEVICE_TOKEN:
        return [
            Error(
                "ENABLE_DEVICE_TOKEN is off: any caller can act as any machine.",
                hint="Unset ENABLE_DEVICE_TOKEN in production.",
                id="devices.E001",
            )
        ]
    return []


@register(deploy=True)
def redis_persists_the_write_behind(app_configs, **kwargs):
    """A 200 to a heartbeat is a promise; its readings wait in Redis for the flush (up to 15 s), so a
    Redis that restarts without its append-only file forgets heartbeats it acknowledged."""
    if not settings.REDIS_URL:
        return []
    try:
        appendonly = redis_client().config_get("appendonly").get("appendonly")
    except REDIS_OUTAGE_ERRORS:
        return [
            Warning(
                "Redis could not be reached to check that it persists the heartbeat write-behind.",
                id="devices.W002",
            )
        ]
    except ResponseError:  # CONFIG is disabled (a managed Redis): its persistence is its provider's
        return []
    if appendonly != "yes":
        return [
            Warning(
                "Redis runs without its append-only file: a Redis restart loses the heartbeat readings "
                "and bin levels acknowledged since the last flush (up to 15 s of the fleet's).",
                hint="Run Redis with `appendonly yes` and `appendfsync everysec` (README: Redis).",
                id="devices.W001",
            )
        ]
    return []
