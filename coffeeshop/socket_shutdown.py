"""WebSockets closed with 1000 (normal closure) when daphne shuts down, instead of dropped with 1006.

On SIGTERM daphne's reactor stops and drops every connection: a client heard no close frame (1006,
abnormal closure) and could not tell a restart from a network fault. Daphne means to cancel each
application first ("before shutdown"), but that step fails with a KeyError whenever a connection is
less than a second old (an HTTP request not yet handed to the application, or just upgraded to a
WebSocket), so it cannot be relied on. A consumer with `ClosesOnShutdown` therefore registers with a
shutdown step of its own on daphne's reactor: every open socket is sent a close frame with 1000 and
given a moment for the client's answer, so the close handshake completes before the reactor drops the
connection; each consumer then runs its usual `disconnect()` (leaving its groups). Should daphne's own
step cancel a consumer first, the consumer does the same from the cancellation. Machines and staff pages
reconnect with their usual backoff either way; this makes the reason visible and the goodbye clean.
"""

import asyncio
import contextlib
import sys
import weakref

NORMAL_CLOSURE = 1000
CLOSE_HANDSHAKE_S = 3.0  # how long a stop waits at most for clients that do not answer the close
_open_consumers: weakref.WeakSet = weakref.WeakSet()
_hooked = False


class ClosesOnShutdown:
    """Mixin for a Channels `AsyncWebsocketConsumer` (put it first among the bases)."""

    is_open = False
    is_closing = False  # the server has sent its close frame, the client has not answered yet

    async def __call__(self, scope, receive, send):
        self.finished = asyncio.Event()
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            if self.is_open or self.is_closing:
                await self.close_for_shutdown()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_closed_by_client(receive), CLOSE_HANDSHAKE_S)
                await self.disconnect(NORMAL_CLOSURE)
            raise
        finally:
            _open_consumers.discard(self)
            self.finished.set()

    async def accept(self, *args, **kwargs):
        await super().accept(*args, **kwargs)
        self.is_open = True
        _open_consumers.add(self)
        _close_all_when_daphne_stops()

    async def close(self, *args, **kwargs):
        if self.is_open:
            self.is_open, self.is_closing = False, True
        await super().close(*args, **kwargs)

    async def websocket_disconnect(self, message):
        self.is_open = self.is_closing = False
        await super().websocket_disconnect(message)

    async def close_for_shutdown(self) -> None:
        if self.is_open:
            await self.close(code=NORMAL_CLOSURE)


async def _closed_by_client(receive) -> None:
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def close_all_open_sockets() -> None:
    """Close every open socket of this process with 1000; return once each consumer has finished (or
    CLOSE_HANDSHAKE_S has passed)."""
    consumers = list(_open_consumers)
    for consumer in consumers:
        await consumer.close_for_shutdown()
    if consumers:
        waits = [asyncio.ensure_future(consumer.finished.wait()) for consumer in consumers]
        _done, late = await asyncio.wait(waits, timeout=CLOSE_HANDSHAKE_S)
        for wait in late:
            wait.cancel()


def _close_all_when_daphne_stops() -> None:
    """Once per process: under daphne (Twisted's reactor running this loop), close the open sockets
    before it shuts down. Elsewhere (tests' communicators, another ASGI server) nothing to hook."""
    global _hooked
    if _hooked or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    if not reactor.running:
        return
    _hooked = True
    reactor.addSystemEventTrigger(
        "before",
        "shutdown",
        lambda: defer.Deferred.fromFuture(asyncio.ensure_future(close_all_open_sockets())),
    )
