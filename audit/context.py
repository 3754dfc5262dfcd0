"""Who is acting: the request being served, set by `AuditContextMiddleware`.

Services take plain values, not requests, so who acted is read from here when a row is recorded: a
staff user in the admin or the API, a machine through its token, or the system outside a request
(periodic and background jobs, management commands). DRF writes the user it authenticated back onto
the Django request, so a token-authenticated caller is known here too.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from audit.models import OperationLog

Source = OperationLog.Source
_request: ContextVar = ContextVar("audit_request", default=None)
_job_actor: ContextVar = ContextVar("audit_job_actor", default=None)


@contextmanager
def acting_for(user, source: str):
    """A background job doing what `user` asked through `source` (the admin, the API): its rows name
    them, as the request that started it would have."""
    token = _job_actor.set({"source": source, "actor": user})
    try:
        yield
    finally:
        _job_actor.reset(token)


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def who_is_acting() -> dict:
    """The audit row's `source`, `actor` or `device_id`, and `ip_address`, for the current context."""
    request = _request.get()
    if request is None:
        return dict(_job_actor.get() or {"source": Source.SYSTEM, "actor": None})
    user = getattr(request, "user", None)
    identity = getattr(user, "identity", None)
    ip = request.META.get("REMOTE_ADDR") or None
    if identity is not None:
        return {"source": Source.MACHINE, "device_id": identity.device_id, "ip_address": ip}
    source = Source.ADMIN if request.path.startswith("/admin/") else Source.API
    actor = user if getattr(user, "is_authenticated", False) and getattr(user, "pk", None) else None
    return {"source": source, "actor": actor, "ip_address": ip}
