"""One Redis connection pool per process, or None on the embedded default (no REDIS_URL)."""

import hashlib
import os
import threading
from functools import lru_cache

import redis
from django.conf import settings
from redis.exceptions import NoScriptError


@lru_cache(maxsize=1)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)


def get_redis() -> redis.Redis | None:
    url = settings.REDIS_URL
    return _client_for(url) if url else None


def key(*parts) -> str:
    """A Redis key under this deployment's prefix, so test runs and deployments never collide."""
    return ":".join([settings.CACHES["default"].get("KEY_PREFIX", "coffeeshop"), *map(str, parts)])


class HotScript:
    """A Lua script for the hottest path (the quiet heartbeat), run on a connection each thread keeps.

    A command through `redis.Redis` checks a connection out of the pool (which polls its socket),
    wraps the call in the retry machinery and records metrics: about 35 µs of CPU per call on our
    2-core machines, a quarter of a quiet heartbeat's own work. This sends EVALSHA straight on a
    connection of the same settings, loading the script with EVAL when the server does not know it
    (a restart, SCRIPT FLUSH). On any error the connection is dropped and the error raised as
    `redis.Redis` would raise it, after one more try on a new connection if the old one was broken.
    """

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._local = threading.local()

    def __call__(self, client: redis.Redis, keys, args):
        try:
            return self._run(client, keys, args)
        except redis.ConnectionError:  # a socket gone stale (Redis restarted): once more, on a new one
            return self._run(client, keys, args)

    def _run(self, client: redis.Redis, keys, args):
        conn = self._connection(client)
        try:
            conn.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
            try:
                return conn.read_response()
            except NoScriptError:
                conn.send_command("EVAL", self.source, len(keys), *keys, *args)
                return conn.read_response()
        except BaseException:
            conn.disconnect()
            self._local.conn = None
            raise

    def _connection(self, client: redis.Redis):
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid() or local.pool is not client.connection_pool:
            # A forked worker never shares its parent's socket.
            pool = client.connection_pool
            conn = local.conn = pool.connection_class(**pool.connection_kwargs)
            local.pid, local.pool = os.getpid(), pool
        return conn
