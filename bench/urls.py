"""The application's URLconf plus `/bench/ceiling`, a bare Django JSON view: the benchmark's ceiling.

The ceiling comes first so it pays no URL resolution beyond its own pattern: it is what the same
server, the same middleware and the same process model can do for a request that does nothing.
"""

from django.http import JsonResponse
from django.urls import path
from django.utils import timezone

from coffeeshop.urls import handler400, handler403, handler404, handler500
from coffeeshop.urls import urlpatterns as app_urlpatterns
from operations.api.dashboard import DashboardSummaryView


def ceiling(request):
    return JsonResponse(
        {"ok": True, "data": {"server_time": timezone.now().isoformat().replace("+00:00", "Z")}}
    )


urlpatterns = [
    path("bench/ceiling", ceiling, name="bench-ceiling"),
    # The dashboard summary with its sales read straight from the orders, for bench/dashboard.py.
    path("bench/dashboard-from-orders", DashboardSummaryView.as_view(sales_from_orders=True)),
    *app_urlpatterns,
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
