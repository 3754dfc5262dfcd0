"""Domain errors that services raise without knowing about HTTP; the API maps each to its status.

A service says *what* went wrong (the rule that refused); `coffeeshop.api.errors` says how a client
hears it. The admin, management commands and Celery tasks catch the same exceptions.
"""

import contextlib

from django.db import IntegrityError, transaction


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str, *, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class Invalid(DomainError):
    """Input that is well-formed but breaks a rule; `details` may name fields: {"fields": {...}}."""

    status_code = 400


class Forbidden(DomainError):
    status_code = 403


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


@contextlib.contextmanager
def unique_or_conflict(field: str, message: str):
    """A uniqueness the database enforces (a constraint) as a 409 naming `field`, not a 500: also when
    two requests race for the same value."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise Conflict(message, details={"fields": {field: [message]}}) from None
