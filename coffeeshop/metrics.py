"""`/metrics` (django-prometheus) for the scraper, not the world: it carries business figures.

It opens to `Authorization: Bearer <METRICS_TOKEN>` or to a connection from one of METRICS_ALLOWED_IPS
(addresses or networks; everyone by default in development, no one in production). The address is the
connection's own (REMOTE_ADDR), never X-Forwarded-For, which any client can write.
"""

import hmac
import ipaddress
import os

import prometheus_client
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from prometheus_client import multiprocess

from coffeeshop.business_metrics import BusinessCollector


def metrics(request):
    if not (has_metrics_token(request) or comes_from_allowed_address(request)):
        raise PermissionDenied("metrics need a token or an allowed address")
    if multiprocess_dir():
        # Several processes: their request metrics merged from the shared directory, and the business
        # figures, which are read from the database and so need no merging.
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(BusinessCollector())
    else:
        registry = prometheus_client.REGISTRY
    page = prometheus_client.generate_latest(registry)
    return HttpResponse(page, content_type=prometheus_client.CONTENT_TYPE_LATEST)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def register_business_metrics() -> None:
    """In the process's own registry, once (the multiprocess registry gets it per scrape)."""
    if not multiprocess_dir():
        prometheus_client.REGISTRY.register(BusinessCollector())


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
