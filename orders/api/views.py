from drf_spectacular.utils import extend_schema
from rest_framework import filters, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Capability
from coffeeshop.api.filtering import StrictFilterBackend
from operations.api.serializers import TaskJobSerializer
from orders import selectors, services
from orders.api import serializers
from orders.filters import OrderFilter
from orders.tasks import export_orders


class OrderSearchFilter(filters.SearchFilter):
    """`?query=`: one whole order id, provider transaction id or machine serial (selectors.search_orders)."""

    def filter_queryset(self, request, queryset, view):
        return selectors.search_orders(queryset, request.query_params.get(self.search_param, ""))


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Sales as the machines reported them; refunds and exceptions by Ops and Admins."""

    filterset_class = OrderFilter
    filter_backends = [StrictFilterBackend, OrderSearchFilter, filters.OrderingFilter]
    search_fields = ["=machine_order_id", "=transaction_id", "=device__serial"]
    ordering_fields = ["received_at", "device_created_at", "total"]
    write_capability = Capability.REFUND
    action_capabilities = {"export": Capability.VIEW}

    def get_queryset(self):
        if self.action == "list":
            return selectors.orders_for(self.request.user).order_by("-received_at", "-pk")
        return selectors.order_with_details_for(self.request.user)

    def get_serializer_class(self):
        return serializers.OrderSerializer if self.action == "list" else serializers.OrderDetailSerializer

    def _detail(self, order_id, status_code=status.HTTP_200_OK):
        order = selectors.order_with_details_for(self.request.user).get(pk=order_id)
        return Response(serializers.OrderDetailSerializer(order).data, status=status_code)

    def _validated(self, serializer_class):
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(request=None, responses={202: TaskJobSerializer})
    @action(detail=False, methods=["post"], url_path="export")
    def export(self, request):
        """Export the orders matching the list's filters (query string) to CSV, in the background."""
        job = services.start_orders_export(
            request.user, request.query_params.dict(), enqueue=export_orders.delay
        )
        return Response(TaskJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=serializers.ManualRefundSerializer, responses={201: serializers.OrderDetailSerializer}
    )
    @action(detail=True, methods=["post"])
    def manual_refund(self, request, pk=None):
        order = self.get_object()
        data = self._validated(serializers.ManualRefundSerializer)
        services.refund_order(order.pk, user=request.user, reason=data["reason"], amount=data.get("amount"))
        return self._detail(order.pk, status.HTTP_201_CREATED)

    @extend_schema(request=serializers.ExceptionSerializer, responses=serializers.OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def mark_exception(self, request, pk=None):
        order = self.get_object()
        services.mark_exception(
            order.pk, user=request.user, reason=self._validated(serializers.ExceptionSerializer)["reason"]
        )
        return self._detail(order.pk)

    @extend_schema(request=serializers.ResolutionSerializer, responses=serializers.OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def resolve_exception(self, request, pk=None):
        order = self.get_object()
        data = self._validated(serializers.ResolutionSerializer)
        services.resolve_exception(order.pk, user=request.user, resolution=data["resolution"])
        return self._detail(order.pk)
