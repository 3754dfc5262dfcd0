from django.urls import path
from rest_framework.routers import SimpleRouter

from inventory.api.import_jobs import MaterialImportJobViewSet
from inventory.api.views import BinViewSet, MaterialViewSet, PickListView, RefillViewSet

router = SimpleRouter(trailing_slash=False)
# Before "materials": its detail route would take "import-jobs" for a material's id.
router.register("materials/import-jobs", MaterialImportJobViewSet, basename="material-import-job")
router.register("materials", MaterialViewSet, basename="material")
router.register("bins", BinViewSet, basename="bin")
router.register("refills", RefillViewSet, basename="refill")
urlpatterns = [path("pick-list", PickListView.as_view(), name="pick-list"), *router.urls]
