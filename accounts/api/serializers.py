from rest_framework import serializers

from accounts.models import Merchant, User
from accounts.tenancy import sees_all_merchants


class MerchantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Merchant
        fields = [
            "id",
            "name",
            "contact_name",
            "contact_email",
            "contact_phone",
            "status",
            "time_zone",
            "currency",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        # Suspending a merchant is the platform's decision: the merchant's own Admins may not lift it.
        if request is None or not sees_all_merchants(request.user):
            fields["status"].read_only = True
        return fields


class MeSerializer(serializers.ModelSerializer):
    capabilities = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "name", "role", "is_platform_staff", "capabilities"]

    def get_capabilities(self, user) -> list[str]:
        return sorted(user.capabilities)
