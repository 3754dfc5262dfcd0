from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import api_view
from rest_framework.response import Response

from accounts import services
from accounts.api.serializers import MerchantSerializer, MeSerializer
from accounts.models import Capability
from accounts.selectors import merchants_for


class MerchantViewSet(viewsets.ModelViewSet):
    """Merchants the user belongs to (all of them for platform staff). Admins edit them."""

    serializer_class = MerchantSerializer
    search_fields = ["name", "contact_name", "contact_email"]
    ordering_fields = ["name", "created_at"]
    filterset_fields = ["status"]
    write_capability = Capability.MANAGE_MERCHANTS
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        return merchants_for(self.request.user).order_by("name")

    def perform_update(self, serializer):
        serializer.instance = services.update_merchant(serializer.instance, **serializer.validated_data)


@extend_schema(responses=MeSerializer)
@api_view(["GET"])
def me(request):
    """Who the caller is and what their role lets them do."""
    return Response(MeSerializer(request.user).data)
