from rest_framework import serializers

from accounts.models import Merchant, User


class MerchantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Merchant
        fields = ["id", "name", "contact_name", "contact_email", "contact_phone", "status", "created_at"]
        read_only_fields = ["id", "created_at"]


class MeSerializer(serializers.ModelSerializer):
    capabilities = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "name", "role", "is_platform_staff", "capabilities"]

    def get_capabilities(self, user) -> list[str]:
        return sorted(user.capabilities)
