"""A request id on every reply and every log line a request causes, into the Celery tasks it queues.

The id is the caller's `X-Request-ID` when it looks like one (a proxy's or a machine's, so their logs
and ours can be joined), else a new one. It is held in a context variable for the request, sent with
every task queued meanwhile as a message header, and held again by the worker while it runs that task,
so `RequestIdFilter` puts it on every record: the web's, the worker's and Celery's own task lines.

Each request also writes one `coffeeshop.access` line: method, path (never the query, which may carry
a download's signature), status, duration, who (a user's id or a machine's id) and the merchant when
known without a query. No header or body is logged, so no token reaches a line.
"""

import logging
import re
import time
import uuid
from contextlib import contextmanager
from contextvars import ContextVar

from django.utils.functional import empty

from accounts.tenancy import merchant_ids_already_read

HEADER = "X-Request-ID"
TASK_HEADER = "request_id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("coffeeshop.access")


def current_request_id() -> str | None:
    return _request_id.get()


def accepted_request_id(offered: str | None) -> str:
    """The caller's id when it is 8 to 128 letters, digits or `._:-`; otherwise a new one."""
    if offered and _SANE_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (None outside a request or a task a request queued) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get() or _received_task_request_id(record)
        return True


def who_made(request) -> dict:
    """The caller as the access line names it, from what the request already knows (never a query):
    a machine (`device_id`, `merchant_id`) or a signed-in user (`user_id`, and `merchant_id` when the
    user's merchants were read and there is one)."""
    user = request.__dict__.get("user")
    if user is None or getattr(user, "_wrapped", None) is empty:  # nobody asked who it was
        return {}
    identity = getattr(user, "identity", None)
    if identity is not None:
        return {"device_id": identity.device_id, "merchant_id": identity.merchant_id}
    if not getattr(user, "is_authenticated", False):
        return {}
    merchant_ids = merchant_ids_already_read(user)
    merchant_id = next(iter(merchant_ids)) if merchant_ids and len(merchant_ids) == 1 else None
    return {"user_id": user.pk, "merchant_id": merchant_id}


class RequestIdMiddleware:
    """Outermost: its id and its duration cover every other middleware, and the replies they make."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        request_id = accepted_request_id(request.META.get("HTTP_X_REQUEST_ID"))
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
            response[HEADER] = request_id
            if access_logger.isEnabledFor(logging.INFO):
                log_access(request, response.status_code, (time.perf_counter() - started) * 1000)
            return response
        finally:
            _request_id.reset(token)


def log_access(request, status: int, duration_ms: float) -> None:
    who = who_made(request)
    access_logger.info(
        "%s %s %s %.1f ms",
        request.method,
        request.path,
        status,
        duration_ms,
        extra={
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": round(duration_ms, 2),
            **who,
        },
    )


# --- Celery: the id travels with the task as a message header -----------------------------------


def add_request_id_header(headers: dict | None = None, **_) -> None:
    """before_task_publish: a task queued while serving a request (or running a task, or sent by beat)
    carries its id; one queued from anywhere else (a shell, a command) gets an id of its own, so its
    lines in the worker still tell one run from another."""
    if headers is not None:
        headers.setdefault(TASK_HEADER, _request_id.get() or uuid.uuid4().hex)


@contextmanager
def holding(request_id: str):
    """Every line logged and every task queued inside the block carries `request_id`."""
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)


_task_tokens: dict[str, object] = {}


def hold_task_request_id(task_id: str | None = None, task=None, **_) -> None:
    """task_prerun: the worker holds the id the task was queued with (a task run eagerly, inside the
    request, keeps the request's)."""
    request_id = getattr(task.request, TASK_HEADER, None) if task is not None else None
    if request_id is None:
        headers = getattr(task.request, "headers", None) if task is not None else None
        request_id = (headers or {}).get(TASK_HEADER)
    if task_id is not None:
        _task_tokens[task_id] = _request_id.set(request_id or _request_id.get())


def release_task_request_id(task_id: str | None = None, **_) -> None:
    """task_postrun."""
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _request_id.reset(token)


# Celery logs "Task … received" as it reads the message, before any signal: the consumer notes the
# message's id here as it builds the request, and the filter names it on that one line.
_received: tuple[str | None, str | None] = (None, None)
RECEIVED_LOGGER = "celery.worker.strategy"


def note_received(task_id: str | None, headers: dict | None) -> None:
    global _received
    _received = (task_id, (headers or {}).get(TASK_HEADER))


def _received_task_request_id(record: logging.LogRecord) -> str | None:
    if record.name != RECEIVED_LOGGER:
        return None
    data = getattr(record, "data", None)
    task_id, request_id = _received
    return request_id if isinstance(data, dict) and data.get("id") == task_id else None
