"""Past capacity, a request that waited too long for a web worker is answered 503 at once, untouched.

gunicorn's sync workers (how production serves HTTP) take one request at a time each; the others wait
in the kernel's listen backlog, where the application cannot see them. Past capacity that queue grows
until every machine waits out its time-out: the server still answers everyone, too late. So each request
is judged by how long it waited before a worker read it. Longer than `MAX_QUEUE_WAIT_MS` and it gets the
protocol's `503 UNAVAILABLE` with `Retry-After` before Django sees it: no session, no query, no write, so
nothing is half-done, and a shed costs a small fraction of the cheapest real request. The worker is back
at once to requests that can still be answered in time, and the wait stays near the limit however far
past capacity the load goes (bench/overload.py measures it). Under capacity nothing waits that long.

The kernel measures the wait: TCP_INFO's `tcpi_last_data_recv` says how long ago the request's last bytes
reached the connection (Linux; gunicorn puts the socket in the WSGI environ). Sync workers close the
connection after every reply, so that is the time the request sat in the backlog. Under any other server,
on a Unix socket or off Linux there is no measure and nothing is shed.
"""

import json
import logging
import socket
import struct
import threading
import time

from django.conf import settings
from django.utils.translation import gettext as _
from prometheus_client import Counter

from coffeeshop.api.errors import OUTAGE_RETRY_AFTER_S, error_body

logger = logging.getLogger(__name__)

SHED = Counter("coffeeshop_requests_shed_total", "Requests answered 503 because they waited too long")

# struct tcp_info (linux/tcp.h): eight one-byte fields, then 32-bit ones; tcpi_last_data_recv (ms) is 12th.
TCP_INFO_LENGTH = 104
LAST_DATA_RECV_OFFSET = 52
# A body is read before the reply so that closing the connection does not reset it under the client
# (which would lose the 503); beyond the protocol's 1 MiB the client gets the reset it asked for.
DRAIN_LIMIT_BYTES = 1024 * 1024 + 65536
LOG_EVERY_S = 10.0


def queue_wait_ms(environ) -> int | None:
    """Milliseconds since the request's last bytes arrived, or None when the server cannot tell."""
    sock = environ.get("gunicorn.socket")
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LENGTH)
    except OSError:  # not a TCP socket (gunicorn bound to a Unix socket)
        return None
    if len(info) < LAST_DATA_RECV_OFFSET + 4:
        return None
    return struct.unpack_from("=I", info, LAST_DATA_RECV_OFFSET)[0]


class LoadShedder:
    """WSGI middleware: sheds requests that waited longer than `max_queue_wait_ms` (0: never)."""

    def __init__(self, app, *, max_queue_wait_ms: int, retry_after_s: int = OUTAGE_RETRY_AFTER_S):
        self.app = app
        self.max_queue_wait_ms = max_queue_wait_ms
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._shed_since_log = 0
        self._longest_wait_ms = 0
        self._logged_at = 0.0

    def __call__(self, environ, start_response):
        if self.max_queue_wait_ms > 0:
            waited = queue_wait_ms(environ)
            if waited is not None and waited > self.max_queue_wait_ms:
                return self.shed(environ, start_response, waited)
        return self.app(environ, start_response)

    def shed(self, environ, start_response, waited_ms: int):
        drain_body(environ)
        message = _("The server is busy; retry in a few seconds.")
        if environ.get("PATH_INFO", "").startswith("/api/"):
            body, content_type = json.dumps(error_body(503, message)).encode(), "application/json"
        else:
            body, content_type = message.encode(), "text/plain; charset=utf-8"
        start_response(
            "503 Service Unavailable",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Retry-After", str(self.retry_after_s)),
            ],
        )
        SHED.inc()
        self.note_shed(waited_ms)
        return [body]

    def note_shed(self, waited_ms: int) -> None:
        """One warning per LOG_EVERY_S at most: past capacity a line per request would add to the load."""
        now = time.monotonic()
        with self._lock:
            self._shed_since_log += 1
            self._longest_wait_ms = max(self._longest_wait_ms, waited_ms)
            if now - self._logged_at < LOG_EVERY_S:
                return
            count, longest = self._shed_since_log, self._longest_wait_ms
            self._shed_since_log, self._longest_wait_ms, self._logged_at = 0, 0, now
        logger.warning(
            "Past capacity: shed %d requests with 503 (waited up to %d ms, limit %d ms)",
            count,
            longest,
            self.max_queue_wait_ms,
        )


def drain_body(environ) -> None:
    try:
        left = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if left > DRAIN_LIMIT_BYTES:
        return
    stream = environ["wsgi.input"]
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            return
        left -= len(chunk)


def shed_when_overloaded(app):
    """The WSGI application behind a LoadShedder configured from settings (call after django.setup())."""
    return LoadShedder(app, max_queue_wait_ms=settings.MAX_QUEUE_WAIT_MS)
