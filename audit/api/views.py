from rest_framework import mixins, viewsets

from accounts.models import Capability
from audit.api.serializers import OperationLogSerializer
from audit.selectors import audit_for
from coffeeshop.api.permissions import IsStaffMember


class AuditPermission(IsStaffMember):
    """The audit trail is for Admins (of their merchants; platform Admins see all)."""

    def has_permission(self, request, view):
        return super().has_permission(request, view) and request.user.can(Capability.MANAGE_USERS)


class OperationLogViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = OperationLogSerializer
    permission_classes = [AuditPermission]
    filterset_fields = {
        "action": ["exact"],
        "source": ["exact"],
        "target_type": ["exact"],
        "target_id": ["exact"],
        "merchant_id": ["exact"],
        "device_id": ["exact"],
        "created_at": ["gte", "lt"],
    }
    search_fields = ["action", "target_repr", "actor__email"]
    ordering_fields = ["created_at"]

    def get_queryset(self):
        return audit_for(self.request.user).order_by("-created_at", "-pk")
