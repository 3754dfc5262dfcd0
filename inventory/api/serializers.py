from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Merchant
from accounts.tenancy import can_access_merchant
from inventory.models import EDITABLE_FIELDS, Bin, Material, Refill
from inventory.services.forecast import days_to_empty
from operations.api.serializers import TaskJobSerializer

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
    background = serializers.BooleanField(
        default=False, help_text=_("Import as a background job (202) whatever the file's size.")
    )
    merchant_id = serializers.IntegerField(required=False, **ID)

    def validate_merchant_id(self, value):
        return validate_merchant_id(self.context["request"], value)


class ImportedRowSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["new", "updated", "unchanged", "error"])
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ImportJobRowSerializer(ImportedRowSerializer):
    values = serializers.DictField(child=serializers.CharField(), help_text=_("The row's cells as read."))


class MaterialImportJobSerializer(serializers.Serializer):
    """A background import (its TaskJob) as `/api/v1/materials/import-jobs/{id}` shows it."""

    id = serializers.IntegerField()
    job = TaskJobSerializer()
    job_url = serializers.CharField()
    merchant_id = serializers.IntegerField()
    file_name = serializers.CharField()
    rows = serializers.IntegerField()
    dry_run = serializers.BooleanField()
    counts = serializers.DictField(child=serializers.IntegerField(), allow_null=True)
    rows_url = serializers.CharField(allow_null=True)
    confirm_url = serializers.CharField(allow_null=True)
    preview_id = serializers.IntegerField(allow_null=True)
    confirm_job_id = serializers.IntegerField(allow_null=True)


class BinSerializer(serializers.ModelSerializer):
    device_id = serializers.IntegerField(read_only=True)
    device_serial = serializers.CharField(source="device.serial", read_only=True)
    device_name = serializers.SerializerMethodField()
    merchant_id = serializers.IntegerField(source="device.merchant_id", read_only=True)
    merchant_name = serializers.CharField(source="device.merchant.name", read_only=True)
    location_id = serializers.IntegerField(source="device.location_id", read_only=True, allow_null=True)
    location_name = serializers.CharField(
        source="device.location.name", read_only=True, allow_null=True, default=None
    )
    material = serializers.CharField(source="material_code", read_only=True)
    state = serializers.CharField(read_only=True)
    days_to_empty = serializers.SerializerMethodField()

    class Meta:
        model = Bin
        fields = [
            "id",
            "device_id",
            "device_serial",
            "device_name",
            "merchant_id",
            "merchant_name",
            "location_id",
            "location_name",
            "index",
            "material",
            "unit",
            "capacity",
            "remaining",
            "level_pct",
            "low_threshold_pct",
            "threshold_follows_material",
            "state",
            "days_to_empty",
            "empty_at",
            "drain_per_day",
            "last_refilled_at",
            "reported_at",
        ]
        read_only_fields = fields

    def get_device_name(self, bin_) -> str:
        return bin_.device.alias or bin_.device.serial

    def get_days_to_empty(self, bin_) -> float | None:
        return days_to_empty(bin_)


class BinThresholdSerializer(serializers.Serializer):
    low_threshold_pct = serializers.FloatField(min_value=0, max_value=100, allow_null=True)


class RefillSerializer(serializers.ModelSerializer):
    bin_id = serializers.IntegerField(read_only=True)
    device_id = serializers.IntegerField(read_only=True)
    user = serializers.CharField(source="user.email", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Refill
        fields = [
            "id",
            "bin_id",
            "device_id",
            "bin_index",
            "material_code",
            "unit",
            "remaining_before",
            "remaining_after",
            "amount",
            "source",
            "user",
            "refilled_at",
        ]
        read_only_fields = fields


class RefillRequestSerializer(serializers.Serializer):
    amount = serializers.FloatField(min_value=0, max_value=1e9)
