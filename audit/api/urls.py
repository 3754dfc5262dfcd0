from rest_framework.routers import SimpleRouter

from audit.api import views

router = SimpleRouter(trailing_slash=False)
router.register("audit", views.OperationLogViewSet, basename="audit")
urlpatterns = router.urls
