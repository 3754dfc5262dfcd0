"""`/metrics` (django-prometheus) for the scraper, not the world: it carries business figures.

It opens to `Authorization: Bearer <METRICS_TOKEN>` or to a connection from one of METRICS_ALLOWED_IPS
(addresses or networks; everyone by default in development, no one in production). The address is the
connection's own (REMOTE_ADDR), never X-Forwarded-For, which any client can write.
"""

import hmac
import ipaddress

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django_prometheus.exports import ExportToDjangoView


def metrics(request):
    if not (has_metrics_token(request) or comes_from_allowed_address(request)):
        raise PermissionDenied("metrics need a token or an allowed address")
    return ExportToDjangoView(request)


def has_metrics_token(request) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def comes_from_allowed_address(request) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_IPS
    )
