"""Every error, wherever it is raised, becomes the protocol's envelope with a stable code.

Codes and statuses are the protocol's (`../shared/protocol.md`): VALIDATION_ERROR 400, UNAUTHORIZED 401,
FORBIDDEN 403, NOT_FOUND 404, METHOD_NOT_ALLOWED 405, CONFLICT 409, PAYLOAD_TOO_LARGE 413, THROTTLED 429,
INTERNAL_ERROR 500, UNAVAILABLE 503. A 5xx never carries SQL, paths or a traceback.
"""

import logging
import sys

import redis.exceptions
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from coffeeshop.exceptions import DomainError

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request is too large."


class Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"
    default_detail = "The service is unavailable."


# What a client should wait before retrying when the database or Redis cannot be reached.
OUTAGE_RETRY_AFTER_S = 5
OUTAGE_ERRORS = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def is_outage(exc) -> bool:
    """The database or Redis cannot be reached (down, restarting, pool exhausted): retry later."""
    return isinstance(exc, OUTAGE_ERRORS)


def outage_response(request) -> HttpResponse:
    """503 with Retry-After: the envelope under /api/, a short page elsewhere (the admin)."""
    logger.warning("Outage answered 503 for %s", request.path, exc_info=sys.exc_info()[1] is not None)
    message = _("The service is briefly unavailable; retry in a few seconds.")
    if is_api_path(request):
        response = JsonResponse(error_body(503, message), status=503)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(OUTAGE_RETRY_AFTER_S)
    return response


class OutageMiddleware:
    """A view that cannot reach the database or Redis answers 503, never 500 (protocol 1.1: Outages)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return outage_response(request) if is_outage(exception) else None


CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    429: "THROTTLED",
    500: "INTERNAL_ERROR",
    503: "UNAVAILABLE",
}


def error_body(status_code: int, message: str, details: dict | None = None) -> dict:
    return {
        "ok": False,
        "error": {
            "code": CODES.get(status_code, "INTERNAL_ERROR"),
            "message": str(message),
            "details": details or {},
        },
    }


def flatten_field_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as the protocol's dotted paths: {"items.0.qty": ["..."]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == "non_field_errors" and not prefix else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            flat.update(flatten_field_errors(value, path))
    elif (
        isinstance(detail, list)
        and detail
        and all(isinstance(item, (str, exceptions.ErrorDetail)) for item in detail)
    ):
        flat.setdefault(prefix or "non_field_errors", []).extend(str(item) for item in detail)
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if value:
                flat.update(flatten_field_errors(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        flat.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return flat


def validation_message(fields: dict[str, list[str]]) -> str:
    if len(fields) == 1:
        name, messages = next(iter(fields.items()))
        return f"{name}: {messages[0]}" if name != "non_field_errors" else messages[0]
    return _("Invalid input in %(count)d fields.") % {"count": len(fields)}


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.status_code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(_("The request could not be understood."))

    if is_outage(exc):
        set_rollback()
        return outage_response(context["request"])
    if not isinstance(exc, exceptions.APIException):
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        set_rollback()
        return Response(error_body(500, _("An internal error occurred.")), status=500)

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    status_code = exc.status_code
    if isinstance(exc, exceptions.UnsupportedMediaType | exceptions.NotAcceptable):
        # The protocol has no code for these: a request the server cannot read is a bad request.
        status_code = 400
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # DRF answers 403 when no authenticator offers a challenge header; the protocol says 401.
        status_code = 401
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_field_errors(exc.detail)
        body = error_body(400, validation_message(fields), {"fields": fields})
    elif isinstance(exc, exceptions.Throttled):
        body = error_body(429, _("Too many requests; retry later."), {"retry_after_s": int(exc.wait or 0)})
    else:
        detail = exc.detail
        details = detail if isinstance(detail, dict) else {}
        message = detail.get("message", "") if isinstance(detail, dict) else detail
        body = error_body(status_code, message or exc.default_detail, details.get("details", {}))
    set_rollback()
    return Response(body, status=status_code, headers=headers)


def _json_error(status_code: int, message: str) -> JsonResponse:
    return JsonResponse(error_body(status_code, message), status=status_code)


def is_api_path(request) -> bool:
    return request.path.startswith("/api/")


def csrf_failure(request, reason=""):
    """CSRF failures are 403 in the envelope under /api/ (machines never meet it: their views are exempt)."""
    if is_api_path(request):
        return _json_error(403, _("CSRF verification failed: %(reason)s") % {"reason": reason})
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason=reason)


def page_not_found(request, exception=None):
    if is_api_path(request):
        return _json_error(404, _("Not found."))
    from django.views.defaults import page_not_found as django_404

    return django_404(request, exception)


def server_error(request):
    if is_outage(sys.exc_info()[1]):  # raised outside a view (a middleware reading the session)
        return outage_response(request)
    if is_api_path(request):
        return _json_error(500, _("An internal error occurred."))
    from django.views.defaults import server_error as django_500

    return django_500(request)


def bad_request(request, exception=None):
    if is_api_path(request):
        return _json_error(400, _("Bad request."))
    from django.views.defaults import bad_request as django_400

    return django_400(request, exception)


def permission_denied(request, exception=None):
    if is_api_path(request):
        return _json_error(403, _("You do not have permission to perform this action."))
    from django.views.defaults import permission_denied as django_403

    return django_403(request, exception)
