"""Domain errors that services raise without knowing about HTTP; the API maps each to its status.

A service says *what* went wrong (the rule that refused); `coffeeshop.api.errors` says how a client
hears it. The admin, management commands and Celery tasks catch the same exceptions.
"""


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
