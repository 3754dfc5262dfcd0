from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from coffeeshop.api.health import health

api_v1 = [
    path("health", health, name="health"),
    path("", include("coffeeshop.protocol.urls")),
    path("", include("accounts.api.urls")),
    path("", include("devices.api.urls")),
    path("", include("inventory.api.urls")),
    path("", include("orders.api.urls")),
    path("", include("recipes.api.urls")),
    path("", include("operations.api.urls")),
    path("", include("audit.api.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("auth/", include("rest_framework.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("", include("django_prometheus.urls")),
    path("", include("coffeeshop.pages")),
]

handler400 = "coffeeshop.api.errors.bad_request"
handler403 = "coffeeshop.api.errors.permission_denied"
handler404 = "coffeeshop.api.errors.page_not_found"
handler500 = "coffeeshop.api.errors.server_error"
