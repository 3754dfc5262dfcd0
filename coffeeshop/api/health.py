import time

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from coffeeshop.api.errors import OUTAGE_RETRY_AFTER_S, error_body
from coffeeshop.redis import redis_client
from coffeeshop.workers import celery_health


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
            "Health",
            {
                "database": serializers.DictField(),
                "redis": serializers.DictField(),
                "degraded": serializers.BooleanField(),
                "celery": serializers.DictField(),
            },
        )
    }
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def health(request):
    """The database and (when configured) Redis, with their latency; 503 when the database is down.
    `celery` says whether workers answer (started a task lately) and when beat last ticked.

    A server without Redis still serves everything on PostgreSQL (coffeeshop.redis), so Redis being
    out is `"degraded": true` with a 200: a load balancer must not take every server out for it.
    """
    checks = {"database": _probe(_database)}
    redis = redis_client()
    checks["redis"] = _probe(redis.ping) if redis is not None else {"ok": True, "configured": False}
    if not checks["database"]["ok"]:
        return Response(
            error_body(503, "The database is down.", checks),
            status=503,
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)},
        )
    return Response({**checks, "degraded": not checks["redis"]["ok"], "celery": celery_health()})
