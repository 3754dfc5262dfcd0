from rest_framework.routers import SimpleRouter

from operations.api.views import TaskJobViewSet

router = SimpleRouter(trailing_slash=False)
router.register("jobs", TaskJobViewSet, basename="job")
urlpatterns = router.urls
