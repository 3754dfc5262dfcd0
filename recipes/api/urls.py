from rest_framework.routers import SimpleRouter

from recipes.api import packages, recipes

router = SimpleRouter(trailing_slash=False)
for prefix, viewset, basename in (*recipes.ROUTES, *packages.ROUTES):
    router.register(prefix, viewset, basename=basename)
urlpatterns = router.urls
