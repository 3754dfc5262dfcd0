from rest_framework.routers import SimpleRouter

from inventory.api.views import MaterialViewSet

router = SimpleRouter(trailing_slash=False)
router.register("materials", MaterialViewSet, basename="material")
urlpatterns = router.urls
