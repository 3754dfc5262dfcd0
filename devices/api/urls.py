from rest_framework.routers import SimpleRouter

from devices.api.views import DeviceViewSet, LocationViewSet

router = SimpleRouter(trailing_slash=False)
router.register("devices", DeviceViewSet, basename="device")
router.register("locations", LocationViewSet, basename="location")
urlpatterns = router.urls
