"""A request id and an access line for every WebSocket connection, as every HTTP request has.

The id is the upgrade request's `X-Request-ID` when it looks like one, else a new one; it is held for
the connection's whole life, so each line its consumer writes and each task it queues carries it (see
coffeeshop.request_id); daphne 4 sends no headers of the application's with the handshake, so the id
is not echoed to the client as an HTTP reply's is. When the connection ends, one `coffeeshop.access`
line says `WS`, the path, 101 if it was accepted (else 403: refused before the handshake), the close
code (the consumer's reason, also for a refusal), how long it lasted and who it was: the consumer
names the caller in `scope["coffeeshop.who"]` once it knows (a user, or a machine and its merchant).
"""

import logging
import time

from coffeeshop.request_id import HEADER, accepted_request_id, access_logger, holding

WHO = "coffeeshop.who"
ACCEPTED, REFUSED = 101, 403


class SocketRequestIdMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        offered = dict(scope.get("headers") or ()).get(HEADER.lower().encode())
        request_id = accepted_request_id(offered.decode("latin-1") if offered else None)
        who: dict = {}
        ending = {"status": None, "code": None}
        started = time.perf_counter()

        async def send_naming_the_request(message):
            if message["type"] == "websocket.accept":
                ending["status"] = ACCEPTED
            elif message["type"] == "websocket.close":
                ending["status"] = ending["status"] or REFUSED
                ending["code"] = message.get("code", 1000)
            await send(message)

        async def receive_noting_the_end():
            message = await receive()
            if message["type"] == "websocket.disconnect" and ending["code"] is None:
                ending["code"] = message.get("code")
            return message

        with holding(request_id):
            try:
                await self.app({**scope, WHO: who}, receive_noting_the_end, send_naming_the_request)
            finally:
                if access_logger.isEnabledFor(logging.INFO):
                    log_socket(scope["path"], ending, (time.perf_counter() - started) * 1000, who)


def log_socket(path: str, ending: dict, duration_ms: float, who: dict) -> None:
    status = ending["status"] or REFUSED
    access_logger.info(
        "WS %s %s %s %.1f ms",
        path,
        status,
        ending["code"],
        duration_ms,
        extra={
            "method": "WS",
            "path": path,
            "status": status,
            "close_code": ending["code"],
            "duration_ms": round(duration_ms, 2),
            **who,
        },
    )


def name_the_caller(scope, **who) -> None:
    """For the consumer, once it knows who connected: the ids the access line names."""
    if WHO in scope:
        scope[WHO].update(who)
