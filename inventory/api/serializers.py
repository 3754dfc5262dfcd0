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
    variance_flagged = serializers.BooleanField(source="is_variance_flagged", read_only=True)

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
            "use_by_hour",
            "expected_use",
            "reported_drop",
            "variance_pct",
            "variance_flagged",
            "variance_since",
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


# --- The pick list ------------------------------------------------------------------------------------


class PickListQuerySerializer(serializers.Serializer):
    """`location` is one id or several (`location=1,2` or `location=1&location=2`)."""

    location = serializers.ListField(child=serializers.CharField(), min_length=1)
    date = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    merchant_id = serializers.IntegerField(required=False, **ID)

    def validate_location(self, values):
        try:
            ids = [int(value) for value in values]
        except ValueError:
            raise serializers.ValidationError(_("Location ids, e.g. 3 or 3,7.")) from None
        if not all(ID["min_value"] <= pk <= ID["max_value"] for pk in ids):
            raise serializers.ValidationError(_("Location ids, e.g. 3 or 3,7."))
        return ids

    @classmethod
    def from_query(cls, params):
        data = {name: params[name] for name in ("date", "merchant_id") if params.get(name)}
        data["location"] = [part.strip() for raw in params.getlist("location") for part in raw.split(",")]
        return cls(data=data)


class FillingSerializer(serializers.Serializer):
    to_fill = serializers.FloatField()
    pack_size = serializers.FloatField(allow_null=True)
    packs = serializers.IntegerField(allow_null=True)
    to_bring = serializers.FloatField()
    left_in_pack = serializers.FloatField()


class PickLineSerializer(FillingSerializer):
    bin_id = serializers.IntegerField()
    index = serializers.IntegerField()
    material_code = serializers.CharField()
    material_name = serializers.CharField()
    unit = serializers.CharField()
    capacity = serializers.FloatField()
    remaining = serializers.FloatField()
    reported_at = serializers.DateTimeField()
    expected_at_visit = serializers.FloatField()


class MachinePicksSerializer(serializers.Serializer):
    device_id = serializers.IntegerField()
    serial = serializers.CharField()
    name = serializers.CharField()
    location_id = serializers.IntegerField()
    location_name = serializers.CharField()
    bins = PickLineSerializer(source="lines", many=True)


class MaterialTotalSerializer(FillingSerializer):
    merchant_id = serializers.IntegerField()
    material_code = serializers.CharField()
    material_name = serializers.CharField()
    unit = serializers.CharField()
    bins = serializers.IntegerField()


class PickListLocationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    merchant_id = serializers.IntegerField()


class PickListSerializer(serializers.Serializer):
    date = serializers.DateField(source="visit_date")
    visit_at = serializers.DateTimeField()
    min_share_pct = serializers.FloatField()
    locations = PickListLocationSerializer(many=True)
    machines = MachinePicksSerializer(many=True)
    totals = MaterialTotalSerializer(many=True)


def _plain(obj, serializer_class, skip=()) -> dict:
    return {name: getattr(obj, name) for name in serializer_class._declared_fields if name not in skip}


def pick_list_data(picks) -> dict:
    """What PickListSerializer describes, written out directly: DRF's fields took a third of the time of
    a 500-machine list. Dates and times are left to the JSON encoder (ISO 8601, UTC as Z, as DRF's)."""
    return {
        "date": picks.visit_date,
        "visit_at": picks.visit_at,
        "min_share_pct": picks.min_share_pct,
        "locations": [
            {"id": loc.pk, "name": loc.name, "merchant_id": loc.merchant_id} for loc in picks.locations
        ],
        "machines": [
            {
                **_plain(machine, MachinePicksSerializer, skip=("bins",)),
                "bins": [_plain(line, PickLineSerializer) for line in machine.lines],
            }
            for machine in picks.machines
        ],
        "totals": [_plain(total, MaterialTotalSerializer) for total in picks.totals],
    }
