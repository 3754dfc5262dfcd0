"""An open-loop HTTP/1.1 load generator for bench/overload.py: requests leave on a schedule, not on replies.

A closed-loop generator (wrk, or N clients back to back) sends the next request only when the last one
was answered, so a server past capacity slows the clients down and the excess never arrives: the queue
it would build is hidden. Machines do not wait for each other. Here request i is due at start + i/rate
whatever happened to the others, each on its own connection (gunicorn's sync workers close after every
reply anyway), and its latency counts from when it was due, so a generator that falls behind shows it
as latency instead of hiding it; the lag is reported too. A request without a complete reply within the
time-out is a time-out, as a machine gives up after its own (10 s).

One thread, non-blocking sockets on epoll: a few tens of microseconds of Python per request, so one
core drives several thousand requests per second. The closed loop (`closed_loop`) is kept for measuring
capacity with the same client and the same requests.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import math
import selectors
import socket
import struct
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
LINGER_RESET = struct.pack("ii", 1, 0)  # a time-out closes with RST, as a client that gave up does
TICK_S = 0.002


@dataclass(slots=True)
class Exchange:
    """One request and what came of it."""

    index: int
    kind: str
    machine: int
    due: float  # time.monotonic() when it was due (open loop) or sent (closed loop)
    wall: float  # time.time() at `due`
    order_id: str | None = None
    status: int | None = None  # None: no complete reply
    outcome: str = ""  # "reply", "timeout", "error" (reset, refused), "client_error" (out of sockets)
    latency_s: float = 0.0
    lag_s: float = 0.0  # how late the generator sent it


class _Connection:
    __slots__ = ("done", "exchange", "out", "received", "sock")

    def __init__(self, sock, exchange, payload):
        self.sock = sock
        self.exchange = exchange
        self.out = memoryview(payload)
        self.received = bytearray()
        self.done = False


def status_of(response: bytes) -> int | None:
    if response.startswith(b"HTTP/1.") and len(response) >= 12 and response[12:13] in (b" ", b"\r"):
        return int(response[9:12])
    return None


class LoadGenerator:
    """`make(index) -> (Exchange, request bytes)` builds each request; results are the Exchanges."""

    def __init__(self, port: int, make, *, timeout_s: float):
        self.port = port
        self.make = make
        self.timeout_s = timeout_s
        self.selector = selectors.EpollSelector()
        self.pending: collections.deque[tuple[float, _Connection]] = collections.deque()
        self.in_flight = 0
        self.results: list[Exchange] = []
        self.next_index = 0  # the index of the next request over successive loops

    # --- one exchange ---------------------------------------------------------------------------

    def _launch(self, index: int, due: float, wall: float, now: float) -> None:
        exchange, payload = self.make(index)
        exchange.due, exchange.wall, exchange.lag_s = due, wall, now - due
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError:  # out of file descriptors: the client's limit, not the server's answer
            exchange.outcome = "client_error"
            self.results.append(exchange)
            return
        sock.setblocking(False)
        code = sock.connect_ex((HOST, self.port))
        conn = _Connection(sock, exchange, payload)
        self.in_flight += 1
        if code not in (0, errno.EINPROGRESS):
            self._finish(conn, "error" if code == errno.ECONNREFUSED else "client_error", now)
            return
        self.selector.register(sock, selectors.EVENT_WRITE, conn)
        self.pending.append((due + self.timeout_s, conn))

    def _finish(self, conn: _Connection, outcome: str, now: float) -> None:
        if conn.done:
            return
        conn.done = True
        exchange = conn.exchange
        exchange.outcome = outcome
        exchange.latency_s = now - exchange.due
        if outcome == "reply":
            exchange.status = status_of(bytes(conn.received[:16]))
            if exchange.status is None:
                exchange.outcome = "error"
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        if outcome == "timeout":
            with contextlib.suppress(OSError):
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        conn.sock.close()
        self.in_flight -= 1
        self.results.append(exchange)

    def _on_event(self, conn: _Connection, mask: int, now: float) -> None:
        try:
            if mask & selectors.EVENT_WRITE:
                if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self._finish(conn, "error", now)
                    return
                sent = conn.sock.send(conn.out)
                conn.out = conn.out[sent:]
                if not conn.out:
                    self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
                return
            chunk = conn.sock.recv(65536)
            if chunk:
                conn.received += chunk
            else:
                self._finish(conn, "reply", now)
        except BlockingIOError:
            return
        except OSError:  # reset: a reply that arrived whole still counts
            self._finish(conn, "reply" if conn.received else "error", now)

    def _poll(self, wait_s: float) -> None:
        for key, mask in self.selector.select(timeout=max(0.0, wait_s)):
            self._on_event(key.data, mask, time.monotonic())
        now = time.monotonic()
        while self.pending and (self.pending[0][1].done or self.pending[0][0] <= now):
            _, conn = self.pending.popleft()
            if not conn.done:
                self._finish(conn, "timeout", now)

    # --- loops ----------------------------------------------------------------------------------

    def open_loop(self, rate: float, duration_s: float, first_index: int = 0) -> list[Exchange]:
        """Request i due at start + i/rate for `duration_s`; returns once every one has an outcome."""
        self.results = []
        total = int(rate * duration_s)
        start, wall_start = time.monotonic(), time.time()
        sent = 0
        while sent < total or self.in_flight:
            now = time.monotonic()
            while sent < total and start + sent / rate <= now:
                offset = sent / rate
                self._launch(first_index + sent, start + offset, wall_start + offset, now)
                sent += 1
            next_due = start + sent / rate if sent < total else now + 0.05
            self._poll(min(next_due - time.monotonic(), TICK_S) if sent < total else 0.05)
        return self.results

    def closed_loop(
        self, connections: int, duration_s: float, first_index: int = 0, max_requests: int | None = None
    ) -> list[Exchange]:
        """`connections` clients back to back for `duration_s` (capacity: the server is never idle), or
        until `max_requests` were sent."""
        self.results = []
        end = time.monotonic() + duration_s
        index = first_index
        last = first_index + max_requests if max_requests is not None else math.inf
        while True:
            now = time.monotonic()
            if index >= last:
                end = now
            while now < end and self.in_flight < connections and index < last:
                self._launch(index, now, time.time(), now)
                index += 1
            if now >= end and not self.in_flight:
                return self.results
            self._poll(0.01)
