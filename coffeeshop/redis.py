"""One Redis connection pool per process, or None on the embedded default (no REDIS_URL)."""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)


def get_redis() -> redis.Redis | None:
    url = settings.REDIS_URL
    return _client_for(url) if url else None


def key(*parts) -> str:
    """A Redis key under this deployment's prefix, so test runs and deployments never collide."""
    return ":".join([settings.CACHES["default"].get("KEY_PREFIX", "coffeeshop"), *map(str, parts)])
