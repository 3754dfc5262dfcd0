from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from orders.models import Order, OrderItem, Refund


class OrderItemSerializer(serializers.ModelSerializer):
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)

    class Meta:
        model = OrderItem
        fields = ["product_id", "name", "qty", "unit_price", "line_total", "recipe_version", "options"]


class RefundSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.email", read_only=True)

    class Meta:
        model = Refund
        fields = [
            "id",
            "amount",
            "reason",
            "status",
            "provider_refund_id",
            "failure_reason",
            "created_by",
            "created_at",
        ]


class OrderSerializer(serializers.ModelSerializer):
    order_id = serializers.CharField(source="machine_order_id")
    device_serial = serializers.CharField(source="device.serial")
    merchant_name = serializers.CharField(source="merchant.name")
    location_name = serializers.CharField(source="location.name", allow_null=True, default=None)
    refundable_amount = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "order_id",
            "device_id",
            "device_serial",
            "merchant_id",
            "merchant_name",
            "location_id",
            "location_name",
            "currency",
            "total",
            "refunded_total",
            "refundable_amount",
            "payment_method",
            "payment_status",
            "transaction_id",
            "device_created_at",
            "received_at",
            "is_test",
            "is_exception",
            "exception_reason",
            "exception_resolution",
            "exception_resolved_at",
        ]


class OrderDetailSerializer(OrderSerializer):
    items = OrderItemSerializer(many=True)
    refunds = RefundSerializer(many=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "items", "refunds"]


class ManualRefundSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)
    amount = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        required=False,
        allow_null=True,
        help_text=_("Default: everything not yet refunded."),
    )


class ExceptionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ResolutionSerializer(serializers.Serializer):
    resolution = serializers.CharField(max_length=500)
