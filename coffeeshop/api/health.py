import time

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from coffeeshop.api.errors import error_body
from coffeeshop.redis import get_redis


def _probe(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a health check reports any failure of its dependency; it must not raise
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


@extend_schema(
    responses={
        200: inline_serializer(
            "Health", {"database": serializers.DictField(), "redis": serializers.DictField()}
        )
    }
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def health(request):
    """The database and (when configured) Redis, with their latency; 503 when one is down."""
    checks = {"database": _probe(_database)}
    redis = get_redis()
    checks["redis"] = _probe(redis.ping) if redis is not None else {"ok": True, "configured": False}
    if all(check["ok"] for check in checks.values()):
        return Response(checks)
    body = error_body(503, "A dependency is down.", checks)
    return Response(body, status=503)
