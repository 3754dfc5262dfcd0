"""One Redis connection pool per process, or None on the embedded default (no REDIS_URL).

Nothing needs Redis: every caller of `get_redis()` has a way without it (the embedded default). So
when Redis fails, the process works without it for `REDIS_RETRY_AFTER_S` and then tries again: a
caller that meets an outage calls `redis_failed()` and takes its way without Redis. The first time
Redis answers again, the hooks given to `on_recovery()` run, to drop what Redis holds that went stale
meanwhile (changes written to PostgreSQL alone), before anyone relies on it.
"""

import contextlib
import hashlib
import logging
import os
import threading
import time
from functools import lru_cache

import redis
from django.conf import settings
from redis.exceptions import NoScriptError

logger = logging.getLogger(__name__)

# Errors that mean Redis cannot be reached now (down, restarting, loading its data, a time-out).
REDIS_OUTAGE_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)
# How long a process works without Redis after an outage before trying it again.
REDIS_RETRY_AFTER_S = 2.0


@lru_cache(maxsize=1)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)


class _Breaker:
    def __init__(self):
        self.down_until = 0.0  # monotonic time until which this process works without Redis
        self.recovering = False  # Redis failed since the recovery hooks last ran
        self.hooks = []
        self.hooks_thread = None  # the thread running the recovery hooks, which use Redis themselves
        self.lock = threading.RLock()  # redis_failed() may be called by a hook, under the lock


_breaker = _Breaker()


def redis_client() -> redis.Redis | None:
    """The client whether or not Redis is answering now (the health check's view), None without REDIS_URL."""
    url = settings.REDIS_URL
    return _client_for(url) if url else None


def get_redis() -> redis.Redis | None:
    """The client, or None without REDIS_URL or while Redis is out (see the module's docstring)."""
    client = redis_client()
    if client is None or (_breaker.down_until and time.monotonic() < _breaker.down_until):
        return None
    if _breaker.recovering and _breaker.hooks_thread != threading.get_ident():
        return client if _recover(client) else None
    return client


def redis_failed(error: BaseException | None = None) -> None:
    """Redis could not be reached: this process works without it for a while."""
    with _breaker.lock:
        if not _breaker.recovering:
            logger.warning("Redis is unreachable (%r): working on PostgreSQL alone", error)
        _breaker.recovering = True
        _breaker.down_until = time.monotonic() + REDIS_RETRY_AFTER_S


@contextlib.contextmanager
def outage_tolerated():
    """For a Redis write that nothing waits for (a cache entry, a flag): if Redis is out, the write is
    skipped and the process works without Redis for a while; the recovery hooks mend what it missed."""
    try:
        yield
    except REDIS_OUTAGE_ERRORS as error:
        redis_failed(error)


def redis_is_down() -> bool:
    return bool(settings.REDIS_URL) and get_redis() is None


def on_recovery(hook) -> None:
    """`hook(client)` runs once each time this process finds Redis answering again after an outage."""
    if hook not in _breaker.hooks:
        _breaker.hooks.append(hook)


def _recover(client: redis.Redis) -> bool:
    with _breaker.lock:
        if not _breaker.recovering:
            return True
        _breaker.hooks_thread = threading.get_ident()
        try:
            for hook in _breaker.hooks:
                hook(client)
        except Exception as error:  # Redis (or the database a hook reads) not back yet: later
            logger.info("Redis recovery postponed: %r", error)
            _breaker.down_until = time.monotonic() + REDIS_RETRY_AFTER_S
            return False
        finally:
            _breaker.hooks_thread = None
        _breaker.recovering = False
        _breaker.down_until = 0.0
    logger.warning("Redis answers again")
    return True


def reset_breaker() -> None:
    """Forget any outage (tests)."""
    _breaker.down_until, _breaker.recovering = 0.0, False


def delete_matching(client: redis.Redis, pattern: str) -> int:
    """Delete every key matching `pattern` (SCAN, in batches): for recovery hooks."""
    deleted = 0
    batch = []
    for name in client.scan_iter(match=pattern, count=1000):
        batch.append(name)
        if len(batch) == 1000:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


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
