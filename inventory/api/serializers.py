from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Merchant
from accounts.tenancy import can_access_merchant
from inventory.models import EDITABLE_FIELDS, Material

ID = {"min_value": 1, "max_value": 2**63 - 1}


class MaterialSerializer(serializers.ModelSerializer):
    merchant_id = serializers.IntegerField(read_only=True)
    merchant_name = serializers.CharField(source="merchant.name", read_only=True)
    enabled = serializers.BooleanField(source="is_enabled", read_only=True)

    class Meta:
        model = Material
        fields = [
            "id",
            "merchant_id",
            "merchant_name",
            "code",
            *EDITABLE_FIELDS,
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


def validate_merchant_id(request, value):
    exists = Merchant.objects.filter(pk=value).exists()
    if not (exists and can_access_merchant(request.user, value)):
        raise serializers.ValidationError(_("unknown merchant"))
    return value


class MaterialWriteSerializer(serializers.ModelSerializer):
    """What staff send. Only shapes are checked here; the rules are `inventory.services`'."""

    merchant_id = serializers.IntegerField(required=False, **ID)
    enabled = serializers.BooleanField(source="is_enabled", required=False)

    class Meta:
        model = Material
        fields = [
            "merchant_id",
            "code",
            *EDITABLE_FIELDS,
            "enabled",
        ]
        validators = []  # (merchant, code) is the service's and the database's to enforce: a 409

    def validate_merchant_id(self, value):
        return validate_merchant_id(self.context["request"], value)


class MaterialImportSerializer(serializers.Serializer):
    file = serializers.FileField()
    dry_run = serializers.BooleanField(default=False)
    merchant_id = serializers.IntegerField(required=False, **ID)

    def validate_merchant_id(self, value):
        return validate_merchant_id(self.context["request"], value)


class ImportedRowSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["new", "updated", "unchanged", "error"])
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
