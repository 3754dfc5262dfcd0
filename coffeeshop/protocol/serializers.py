"""The shapes of the machine protocol (../shared/protocol.md), field for field.

Validation of shape only; rules (which secret, which material) belong to the services and the view.
Unknown fields are ignored: a newer machine may send fields this server does not know yet.
"""

import ipaddress
import math
from datetime import datetime

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from coffeeshop.api.json_values import no_nul
from coffeeshop.protocol.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictRegexField,
)
from devices.models import DeviceState
from devices.services import BinReading, StatusReading
from operations.models import CommandResult
from orders.models import MACHINE_PAYMENT_STATUSES
from orders.services import ItemInput, OrderInput

MACHINE_STATES = [
    DeviceState.IDLE,
    DeviceState.BREWING,
    DeviceState.CLEANING,
    DeviceState.MAINTENANCE,
    DeviceState.FAULT,
]


class RegisterSerializer(serializers.Serializer):
    serial = StrictRegexField(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", max_length=64)
    model = StrictCharField(max_length=64)
    firmware = StrictCharField(max_length=32, required=False, allow_blank=True, default="")
    alias = StrictCharField(max_length=120, required=False, allow_blank=True, default="")
    # Not required here: a missing secret is a 403 (the service's answer), not a validation error.
    provisioning_secret = StrictCharField(max_length=128, required=False, allow_blank=True, default="")


class BinSerializer(serializers.Serializer):
    index = StrictIntegerField(min_value=0, max_value=255)
    material = StrictCharField(max_length=64)
    remaining = StrictFloatField(min_value=0)
    capacity = StrictFloatField(min_value=0.001)
    unit = StrictCharField(max_length=16, required=False, default="g")
    refilled = StrictBooleanField(required=False, default=False)

    def validate(self, attrs):
        if attrs["remaining"] > attrs["capacity"]:
            raise serializers.ValidationError({"remaining": [_("must not exceed capacity")]})
        return attrs

    @staticmethod
    def to_reading(attrs) -> BinReading:
        return BinReading(
            index=attrs["index"],
            material_code=attrs["material"],
            remaining=attrs["remaining"],
            capacity=attrs["capacity"],
            unit=attrs["unit"],
            refilled=attrs["refilled"],
        )


class BinListField(serializers.ListField):
    child = BinSerializer()

    def to_internal_value(self, data):
        bins = super().to_internal_value(data)
        indexes = [b["index"] for b in bins]
        if len(indexes) != len(set(indexes)):
            raise serializers.ValidationError(_("each bin index may appear only once"))
        return bins


class WifiSerializer(serializers.Serializer):
    ssid = StrictCharField(max_length=64, required=False, allow_blank=True)
    rssi_dbm = StrictIntegerField(min_value=-150, max_value=0, required=False)


class HeartbeatSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=MACHINE_STATES)
    temperature_c = StrictFloatField(min_value=-50, max_value=250, required=False)
    ip = serializers.IPAddressField(required=False)
    wifi = WifiSerializer(required=False)
    firmware = StrictCharField(max_length=32, required=False)
    uptime_s = StrictIntegerField(min_value=0, required=False)
    package_version = StrictCharField(max_length=32, required=False, allow_blank=True)
    sent_at = serializers.DateTimeField(required=False)
    bins = BinListField(required=False, max_length=64)

    def to_reading(self) -> StatusReading:
        data = self.validated_data
        wifi = data.get("wifi", {})
        bins = data.get("bins")
        return StatusReading(
            state=data["state"],
            temperature_c=data.get("temperature_c"),
            ip=data.get("ip"),
            wifi_ssid=wifi.get("ssid"),
            wifi_rssi_dbm=wifi.get("rssi_dbm"),
            firmware=data.get("firmware"),
            uptime_s=data.get("uptime_s"),
            package_version=data.get("package_version"),
            sent_at=data.get("sent_at"),
            bins=tuple(BinSerializer.to_reading(b) for b in bins) if bins else None,
        )


def _plain_text(value, max_length: int, *, blank: bool = False) -> bool:
    """What a CharField takes unchanged: printable ASCII, no surrounding spaces (it would trim them)."""
    return (
        isinstance(value, str)
        and len(value) <= max_length
        and (blank or value != "")
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
    )


def _plain_int(value, low: int | None = None, high: int | None = None) -> bool:
    return type(value) is int and (low is None or value >= low) and (high is None or value <= high)


def _plain_number(value, low: float | None = None, high: float | None = None) -> bool:
    return (
        type(value) in (int, float)
        and math.isfinite(value)
        and (low is None or value >= low)
        and (high is None or value <= high)
    )


def _plain_ipv4(value) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _plain_bin(raw) -> BinReading | None:
    if not isinstance(raw, dict) or raw.get("refilled", False) is not False:
        return None
    index, material, remaining, capacity = (
        raw.get(k) for k in ("index", "material", "remaining", "capacity")
    )
    unit = raw.get("unit", "g")
    if not (
        _plain_int(index, 0, 255)
        and _plain_text(material, 64)
        and _plain_number(remaining, 0)
        and _plain_number(capacity, 0.001)
        and remaining <= capacity
        and _plain_text(unit, 16)
    ):
        return None
    return BinReading(
        index=index, material_code=material, remaining=float(remaining), capacity=float(capacity), unit=unit
    )


def plain_heartbeat_reading(data) -> StatusReading | None:
    """The heartbeat's fast path: a report in its plain, everyday form read without a serializer.

    Returns None for anything else (a refill, an IPv6 address, a number sent as a string, any doubt at
    all); then `HeartbeatSerializer` decides, with its error messages. So this accepts a subset of what
    the serializer accepts and reads it to the same `StatusReading` (a test holds the two together);
    it exists because the serializer costs more than the rest of a quiet heartbeat together.
    """
    if not isinstance(data, dict) or data.get("state") not in MACHINE_STATES:
        return None
    if any(data.get(name, "") is None for name in HeartbeatSerializer._declared_fields):
        return None  # an explicit null is an error the serializer words
    temperature, ip, wifi = data.get("temperature_c"), data.get("ip"), data.get("wifi", {})
    firmware, uptime, package, sent_at = (
        data.get(k) for k in ("firmware", "uptime_s", "package_version", "sent_at")
    )
    if not (
        (temperature is None or _plain_number(temperature, -50, 250))
        and (ip is None or _plain_ipv4(ip))
        and isinstance(wifi, dict)
        and ("ssid" not in wifi or _plain_text(wifi["ssid"], 64, blank=True))
        and ("rssi_dbm" not in wifi or _plain_int(wifi["rssi_dbm"], -150, 0))
        and (firmware is None or _plain_text(firmware, 32))
        and (uptime is None or _plain_int(uptime, 0))
        and (package is None or _plain_text(package, 32, blank=True))
        and (sent_at is None or isinstance(sent_at, str))
    ):
        return None
    if sent_at is not None:
        try:
            sent_at = datetime.fromisoformat(sent_at)
        except ValueError:
            return None
        if sent_at.tzinfo is None:
            return None
    bins = data.get("bins")
    if bins is not None:
        if not isinstance(bins, list) or len(bins) > 64:
            return None
        bins = tuple(_plain_bin(b) for b in bins)
        if None in bins or len({b.index for b in bins}) != len(bins):
            return None
    return StatusReading(
        state=data["state"],
        temperature_c=None if temperature is None else float(temperature),
        ip=ip,
        wifi_ssid=wifi.get("ssid"),
        wifi_rssi_dbm=wifi.get("rssi_dbm"),
        firmware=firmware,
        uptime_s=uptime,
        package_version=package,
        sent_at=sent_at,
        bins=bins or None,
    )


class MaterialsReportSerializer(serializers.Serializer):
    sent_at = serializers.DateTimeField(required=False)
    bins = BinListField(min_length=1, max_length=64)

    def to_readings(self) -> tuple[BinReading, ...]:
        return tuple(BinSerializer.to_reading(b) for b in self.validated_data["bins"])


class MoneyField(serializers.DecimalField):
    """Money is a decimal string with two places ("18.00"), never a float."""

    default_error_messages = {"not_a_string": _('must be a decimal string such as "18.00", not a number')}

    def __init__(self, **kwargs):
        super().__init__(max_digits=12, decimal_places=2, min_value=0, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class OffsetDateTimeField(serializers.DateTimeField):
    """Protocol times carry an offset; a time without one is ambiguous and refused."""

    default_error_messages = {"no_offset": _("must include a UTC offset, e.g. 2026-11-24T08:14:31+08:00")}

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        as_sent = parse_datetime(value) if isinstance(value, str) else None
        if as_sent is not None and as_sent.tzinfo is None:
            self.fail("no_offset")
        return parsed


class OrderItemSerializer(serializers.Serializer):
    product_id = StrictCharField(max_length=64)
    name = StrictCharField(max_length=120)
    qty = StrictIntegerField(
        min_value=1, max_value=1000, error_messages={"min_value": _("must be at least 1")}
    )
    unit_price = MoneyField()
    recipe_version = StrictCharField(max_length=32, required=False, allow_blank=True, default="")
    options = serializers.DictField(required=False, default=dict, validators=[no_nul])


class PaymentSerializer(serializers.Serializer):
    method = StrictRegexField(
        r"^[a-z0-9][a-z0-9_-]{0,31}$",
        error_messages={
            "invalid": _("must be a payment method code such as wechat, alipay, card, corp, cash")
        },
    )
    status = serializers.ChoiceField(choices=MACHINE_PAYMENT_STATUSES)
    transaction_id = StrictCharField(max_length=128, required=False, allow_blank=True, default="")


class OrderSerializer(serializers.Serializer):
    order_id = StrictRegexField(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", max_length=64)
    created_at = OffsetDateTimeField()
    currency = StrictRegexField(
        r"^[A-Z]{3}$", error_messages={"invalid": _("must be an ISO 4217 code, e.g. CNY")}
    )
    total = MoneyField()
    payment = PaymentSerializer()
    items = serializers.ListField(child=OrderItemSerializer(), min_length=1, max_length=50)
    is_test = StrictBooleanField(required=False, default=False)

    def validate(self, attrs):
        expected = sum((item["qty"] * item["unit_price"] for item in attrs["items"]), start=0)
        if attrs["total"] != expected:
            raise serializers.ValidationError(
                {
                    "total": [
                        _("must equal the sum of qty × unit_price of the items (%(sum)s)")
                        % {"sum": f"{expected:.2f}"}
                    ]
                }
            )
        return attrs

    @staticmethod
    def to_input(attrs) -> OrderInput:
        payment = attrs["payment"]
        return OrderInput(
            order_id=attrs["order_id"],
            created_at=attrs["created_at"],
            currency=attrs["currency"],
            total=attrs["total"],
            payment_method=payment["method"],
            payment_status=payment["status"],
            transaction_id=payment["transaction_id"],
            is_test=attrs["is_test"],
            items=tuple(
                ItemInput(
                    product_id=i["product_id"],
                    name=i["name"],
                    qty=i["qty"],
                    unit_price=i["unit_price"],
                    recipe_version=i["recipe_version"],
                    options=i["options"],
                )
                for i in attrs["items"]
            ),
        )


class CommandResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CommandResult.choices)
    result = serializers.DictField(required=False, default=dict, validators=[no_nul])
    error = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)
    finished_at = OffsetDateTimeField(required=False)
