"""What can go wrong: a call without the answer the protocol promises (`ProtocolError` and its kinds),
a fleet that cannot run, a machine refused for good, and a fleet that is stopping."""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """A call did not get the answer the protocol promises; the machine logs it and carries on."""


class Unreachable(ProtocolError):
    """The server could not be reached (timeouts, connection errors, 5xx, throttling) after retries."""


class ProtocolViolation(ProtocolError):
    """The server answered outside the protocol (not the envelope, a field missing or mistyped)."""


class Rejected(ProtocolError):
    """The server refused the call with an error envelope; retrying the same call will not help."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class Unauthorized(Rejected):
    """401: the token was revoked or replaced; a machine answers by registering again."""


class FleetConfigurationError(ValueError):
    """`run_fleet` was called with arguments no fleet can run with."""


class MachineStopped(Exception):
    """The server refused this machine's registration for good (wrong secret, serial of another merchant)."""


class FleetStopping(Exception):
    """The fleet is stopping: the machine leaves its life loop at the next quiet moment."""
