from rest_framework import serializers

from audit.models import OperationLog


class OperationLogSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.email", allow_null=True, default=None)

    class Meta:
        model = OperationLog
        fields = [
            "id",
            "created_at",
            "merchant_id",
            "actor",
            "device_id",
            "source",
            "ip_address",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "changes",
        ]
