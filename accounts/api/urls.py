from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api.views import MerchantViewSet, me

router = SimpleRouter(trailing_slash=False)
router.register("merchants", MerchantViewSet, basename="merchant")
urlpatterns = [path("me", me, name="me"), *router.urls]
