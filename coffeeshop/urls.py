from django.contrib import admin
from django.urls import include, path, re_path

from accounts.api.urls import router as accounts_router
from audit.api.urls import router as audit_router
from coffeeshop.api.docs import DocsView, SchemaView
from coffeeshop.api.health import health
from coffeeshop.api.root import ApiRootView, no_such_endpoint
from coffeeshop.metrics import metrics
from devices.api.urls import router as devices_router
from inventory.api.urls import router as inventory_router
from operations.api.urls import router as operations_router
from orders.api.urls import router as orders_router
from recipes.api.urls import router as recipes_router

STAFF_ROUTERS = [
    accounts_router,
    devices_router,
    inventory_router,
    orders_router,
    recipes_router,
    operations_router,
    audit_router,
]

api_v1 = [
    path("", ApiRootView.as_view(routers=STAFF_ROUTERS), name="api-root"),
    path("health", health, name="health"),
    path("", include("coffeeshop.protocol.urls")),
    path("", include("accounts.api.urls")),
    path("", include("devices.api.urls")),
    path("", include("inventory.api.urls")),
    path("", include("orders.api.urls")),
    path("", include("recipes.api.urls")),
    path("", include("operations.api.urls")),
    path("", include("audit.api.urls")),
    path("schema", SchemaView.as_view(), name="schema"),
    path("docs", DocsView.as_view(url_name="schema"), name="docs"),
    path("auth/", include("rest_framework.urls")),
    # Last: any other path under /api/v1/ is the envelope's 404, also with DEBUG on.
    re_path(r"^.*$", no_such_endpoint),
]

urlpatterns = [
    path("admin/analytics/", include("operations.admin.analytics")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("metrics", metrics, name="prometheus-django-metrics"),
    # Django's set_language view: the admin's language switch (unfold's SHOW_LANGUAGES) posts to it.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("coffeeshop.pages")),
]

handler400 = "coffeeshop.api.errors.bad_request"
handler403 = "coffeeshop.api.errors.permission_denied"
handler404 = "coffeeshop.api.errors.page_not_found"
handler500 = "coffeeshop.api.errors.server_error"
