from rest_framework.routers import SimpleRouter

from inventory.api.views import BinViewSet, MaterialViewSet, RefillViewSet

router = SimpleRouter(trailing_slash=False)
router.register("materials", MaterialViewSet, basename="material")
router.register("bins", BinViewSet, basename="bin")
router.register("refills", RefillViewSet, basename="refill")
urlpatterns = router.urls
