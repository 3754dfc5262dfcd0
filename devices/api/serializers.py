from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Merchant
from accounts.tenancy import can_access_merchant
from devices.models import Device, DeviceBin, DeviceStatusHistory, Location


class LocationSerializer(serializers.ModelSerializer):
    merchant_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    merchant_name = serializers.CharField(source="merchant.name", read_only=True)

    class Meta:
        model = Location
        fields = [
            "id",
            "merchant_id",
            "merchant_name",
            "name",
            "address",
            "city",
            "latitude",
            "longitude",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def validate_merchant_id(self, value):
        exists = Merchant.objects.filter(pk=value).exists()
        if not (exists and can_access_merchant(self.context["request"].user, value)):
            raise serializers.ValidationError(_("unknown merchant"))
        return value


class DeviceBinSerializer(serializers.ModelSerializer):
    material = serializers.CharField(source="material_code")

    class Meta:
        model = DeviceBin
        fields = [
            "index",
            "material",
            "unit",
            "capacity",
            "remaining",
            "level_pct",
            "low_threshold_pct",
            "is_low",
            "last_refilled_at",
            "reported_at",
        ]


class DeviceSerializer(serializers.ModelSerializer):
    merchant_id = serializers.IntegerField(read_only=True)
    merchant_name = serializers.CharField(source="merchant.name", read_only=True)
    location_id = serializers.IntegerField(read_only=True, allow_null=True)
    location_name = serializers.CharField(
        source="location.name", read_only=True, allow_null=True, default=None
    )
    wifi = serializers.SerializerMethodField()

    class Meta:
        model = Device
        fields = [
            "id",
            "serial",
            "alias",
            "model",
            "firmware",
            "merchant_id",
            "merchant_name",
            "location_id",
            "location_name",
            "state",
            "is_online",
            "last_seen_at",
            "status_changed_at",
            "temperature_c",
            "ip_address",
            "wifi",
            "uptime_s",
            "package_version",
            "device_time",
            "offline_timeout_s",
            "registered_at",
        ]

    def get_wifi(self, device) -> dict:
        return {"ssid": device.wifi_ssid, "rssi_dbm": device.wifi_rssi_dbm}


class DeviceDetailSerializer(DeviceSerializer):
    bins = DeviceBinSerializer(many=True, read_only=True)

    class Meta(DeviceSerializer.Meta):
        fields = [*DeviceSerializer.Meta.fields, "bins"]


class DeviceUpdateSerializer(serializers.Serializer):
    alias = serializers.CharField(max_length=120, required=False, allow_blank=True)
    location_id = serializers.IntegerField(required=False, allow_null=True)
    offline_timeout_s = serializers.IntegerField(
        required=False, allow_null=True, min_value=30, max_value=86400
    )

    def validate_location_id(self, value):
        if value is None:
            return None
        location = Location.objects.for_user(self.context["request"].user).filter(pk=value).first()
        if location is None:
            raise serializers.ValidationError(_("unknown location"))
        return location


class StatusHistorySerializer(serializers.ModelSerializer):
    class Meta:
        model = DeviceStatusHistory
        fields = [
            "recorded_at",
            "device_time",
            "event",
            "state",
            "is_online",
            "temperature_c",
            "wifi_rssi_dbm",
        ]


class SalesFigureSerializer(serializers.Serializer):
    currency = serializers.CharField()
    orders = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)


class SalesPeriodSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    figures = SalesFigureSerializer(many=True, help_text=_("One per currency: paid orders, net of refunds."))


class SalesPeriodsSerializer(serializers.Serializer):
    time_zone = serializers.CharField(help_text=_("The merchant's: its days are these days."))
    today = SalesPeriodSerializer()
    this_week = SalesPeriodSerializer()


class DeviceSummarySerializer(serializers.Serializer):
    device = DeviceDetailSerializer()
    since = serializers.DateTimeField()
    avg_temperature_c = serializers.FloatField(allow_null=True)
    min_temperature_c = serializers.FloatField(allow_null=True)
    max_temperature_c = serializers.FloatField(allow_null=True)
    offline_events = serializers.IntegerField()
    state_changes = serializers.IntegerField()
    uptime_pct_24h = serializers.FloatField(
        allow_null=True, help_text=_("Share of the last 24 hours online, from recorded connectivity.")
    )
    low_bins = serializers.ListField(child=serializers.IntegerField(), help_text=_("Indexes of low bins."))
    last_heartbeat_at = serializers.DateTimeField(allow_null=True)
    package_version = serializers.CharField(allow_blank=True)
    sales = SalesPeriodsSerializer()
    open_alarms = serializers.DictField(
        child=serializers.IntegerField(), help_text=_("Active alarms by severity.")
    )
    pending_commands = serializers.IntegerField(help_text=_("Commands not yet finished."))
    recent_history = StatusHistorySerializer(many=True)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text=_("Shown once; store it on the machine."))


class HistoryChartQuerySerializer(serializers.Serializer):
    from_ = serializers.DateTimeField(required=False)
    to = serializers.DateTimeField(required=False)
    resolution = serializers.ChoiceField(choices=["hour", "day"], required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class HistoryPointSerializer(serializers.Serializer):
    at = serializers.CharField(help_text="The period's start, in the merchant's time zone (ISO 8601).")
    online_pct = serializers.FloatField(allow_null=True)
    known_s = serializers.FloatField()
    avg_temperature_c = serializers.FloatField(allow_null=True)
    min_temperature_c = serializers.FloatField(allow_null=True)
    max_temperature_c = serializers.FloatField(allow_null=True)
    offline_events = serializers.IntegerField()
    state_changes = serializers.IntegerField()


class HistoryChartSerializer(serializers.Serializer):
    time_zone = serializers.CharField()
    resolution = serializers.CharField()
    points = HistoryPointSerializer(many=True)
