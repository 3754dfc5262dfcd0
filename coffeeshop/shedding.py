"""Past capacity, a request that waited too long for a web worker is answered 503 at once, untouched.

gunicorn's sync workers (how production serves HTTP) take one request at a time each; the others wait
in the kernel's listen backlog, where the application cannot see them. Past capacity that queue grows
until every machine waits out its time-out: the server still answers everyone, too late. So each
connection is judged by how long its request waited before a worker took it. Longer than
`MAX_QUEUE_WAIT_MS` and it gets the protocol's `503 UNAVAILABLE` with `Retry-After` straight from the
worker's accept: gunicorn parses nothing and Django never sees it (no session, no query, no write), so
nothing is half-done, and a shed costs about a tenth of a served request (0.13 ms of CPU on the bench
machine; a third of what gunicorn alone spends to parse a request and send a reply). The worker is
back at once to requests that can still be answered in time, and the wait stays near the limit however
far past capacity the load goes (bench/overload.py measures it). Under capacity nothing waits that
long. A connection on which nothing has arrived yet is served as usual: its wait was the client's.

The kernel measures the wait: TCP_INFO's `tcpi_last_data_recv` says how long ago the request's last
bytes reached the connection (Linux). A sync worker gets a new connection for every request, so that is
the time it sat in the backlog. Elsewhere (a Unix socket, not Linux) there is no measure and nothing is
shed. Serve with `--worker-class coffeeshop.shedding.SheddingSyncWorker` (gunicorn.conf.py sets it).
"""

import json
import logging
import socket
import struct
import time

from django.conf import settings
from django.utils.translation import gettext as _
from gunicorn import util
from gunicorn.workers.sync import SyncWorker
from prometheus_client import Counter

from coffeeshop.request_id import HEADER, accepted_request_id

logger = logging.getLogger(__name__)

SHED = Counter("coffeeshop_requests_shed_total", "Requests answered 503 because they waited too long")

# struct tcp_info (linux/tcp.h): eight one-byte fields, then 32-bit ones; tcpi_last_data_recv (ms) is 12th.
TCP_INFO_LENGTH = 104
LAST_DATA_RECV_OFFSET = 52
LOG_EVERY_S = 10.0
SMALL_REQUEST_BYTES = 65536


def queue_wait_ms(sock: socket.socket) -> int | None:
    """Milliseconds since the last bytes arrived on `sock`, or None when the kernel cannot tell."""
    if not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LENGTH)
    except OSError:  # not a TCP socket (gunicorn bound to a Unix socket)
        return None
    if len(info) < LAST_DATA_RECV_OFFSET + 4:
        return None
    return struct.unpack_from("=I", info, LAST_DATA_RECV_OFFSET)[0]


def waiting_request(sock: socket.socket) -> bytes:
    """The start of what the client has sent so far, left in place (b"" if nothing yet)."""
    try:
        return sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # BlockingIOError: nothing sent yet; or the connection is already gone
        return b""


def offered_request_id(head: bytes) -> str | None:
    """The X-Request-ID header's value in the start of a request, if it is there."""
    at = head.lower().find(b"\r\nx-request-id:")
    if at < 0:
        return None
    end = head.find(b"\r\n", at + 2)
    return head[at + len(b"\r\nx-request-id:") : end if end >= 0 else None].strip().decode("latin-1")


def drain(sock: socket.socket) -> int:
    """Reads what has arrived on a non-blocking `sock`; how many bytes (stops past SMALL_REQUEST_BYTES)."""
    read = 0
    while read <= SMALL_REQUEST_BYTES:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return read
        if not chunk:
            return read
        read += len(chunk)
    return read


def shed_replies() -> dict[bool, tuple[bytes, bytes]]:
    """The 503 reply, for a path under /api/ (True: the protocol's envelope) and elsewhere, in two parts
    either side of its request id (coffeeshop.request_id: the caller's, or a new one)."""
    # Imported once the application is loaded: gunicorn's master imports this module before Django is set up.
    from coffeeshop.api.errors import OUTAGE_RETRY_AFTER_S, error_body

    message = _("The server is busy; retry in a few seconds.")
    replies = {}
    for is_api, body, content_type in (
        (True, json.dumps(error_body(503, message)).encode(), "application/json"),
        (False, message.encode(), "text/plain; charset=utf-8"),
    ):
        head = (
            f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {OUTAGE_RETRY_AFTER_S}\r\nConnection: close\r\n"
            f"{HEADER}: "
        )
        replies[is_api] = (head.encode(), b"\r\n\r\n" + body)
    return replies


class SheddingSyncWorker(SyncWorker):
    """gunicorn's sync worker, answering 503 to a connection whose request waited past the limit."""

    def run(self):
        self.max_queue_wait_ms = settings.MAX_QUEUE_WAIT_MS  # the application (and settings) are loaded
        self.replies = shed_replies()
        self.shed_since_log, self.longest_wait_ms, self.logged_at = 0, 0, 0.0
        super().run()

    def accept(self, listener):
        client, addr = listener.accept()
        if self.max_queue_wait_ms > 0:
            waited = queue_wait_ms(client)
            if waited is not None and waited > self.max_queue_wait_ms:
                request = waiting_request(client)
                if request:  # else nothing was sent yet: the time was the client's, not the queue's
                    self.shed(client, request, waited)
                    return
        client.setblocking(1)
        util.close_on_exec(client)
        self.handle(listener, client, addr)

    def shed(self, client: socket.socket, request: bytes, waited_ms: int) -> None:
        # Closing with unread bytes would reset the connection and could lose the reply. A request that
        # waited this long has arrived whole: read it and close at once, not waiting for the client's
        # FIN as gunicorn's graceful close does; a large body may still be coming in, and gets that.
        whole = False
        try:
            client.settimeout(1.0)
            head, tail = self.replies[b" /api/" in request.split(b"\r\n", 1)[0]]
            request_id = accepted_request_id(offered_request_id(request)).encode("latin-1")
            client.sendall(head + request_id + tail)
            client.setblocking(False)  # with a time-out Python would wait for more before each recv
            whole = drain(client) <= SMALL_REQUEST_BYTES
        except OSError:  # the client gave up meanwhile
            pass
        finally:
            if whole:
                client.close()
            else:
                util.close_graceful(client)
        SHED.inc()
        self.note_shed(waited_ms)

    def note_shed(self, waited_ms: int) -> None:
        """One warning per LOG_EVERY_S at most: past capacity a line per request would add to the load."""
        self.shed_since_log += 1
        self.longest_wait_ms = max(self.longest_wait_ms, waited_ms)
        now = time.monotonic()
        if now - self.logged_at < LOG_EVERY_S:
            return
        logger.warning(
            "Past capacity: shed %d requests with 503 (waited up to %d ms, limit %d ms)",
            self.shed_since_log,
            self.longest_wait_ms,
            self.max_queue_wait_ms,
        )
        self.shed_since_log, self.longest_wait_ms, self.logged_at = 0, 0, now
