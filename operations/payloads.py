"""The payload each command type carries (protocol: "Types and payloads"). Shape only."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from coffeeshop.api.json_values import no_nul
from operations.models import CommandType


class MakeProduct(serializers.Serializer):
    product_id = serializers.CharField(max_length=64)
    options = serializers.DictField(required=False, default=dict, validators=[no_nul])


class OpenDoor(serializers.Serializer):
    duration_s = serializers.IntegerField(min_value=1, max_value=600)


class Upgrade(serializers.Serializer):
    package_id = serializers.CharField(max_length=64)
    version = serializers.CharField(max_length=32)
    url = serializers.CharField(max_length=500)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", error_messages={"invalid": _("must be 64 hex digits")})


class Sync(serializers.Serializer):
    what = serializers.ListField(
        child=serializers.ChoiceField(choices=["status", "materials", "orders"]), min_length=1
    )


class SetParams(serializers.Serializer):
    params = serializers.DictField(validators=[no_nul])

    def validate_params(self, value):
        if not value:
            raise serializers.ValidationError(_("must name at least one parameter"))
        return value


class Restart(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


class Clean(serializers.Serializer):
    program = serializers.ChoiceField(choices=["rinse", "milk", "full"])


class Lock(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


class Unlock(serializers.Serializer):
    pass


PAYLOADS: dict[str, type[serializers.Serializer]] = {
    CommandType.MAKE_PRODUCT: MakeProduct,
    CommandType.OPEN_DOOR: OpenDoor,
    CommandType.UPGRADE: Upgrade,
    CommandType.SYNC: Sync,
    CommandType.SET_PARAMS: SetParams,
    CommandType.RESTART: Restart,
    CommandType.CLEAN: Clean,
    CommandType.LOCK: Lock,
    CommandType.UNLOCK: Unlock,
}


def validated_payload(command_type: str, payload) -> tuple[dict | None, dict]:
    """(clean payload, {}) or (None, {"payload.<field>": [errors]})."""
    if not isinstance(payload, dict):
        return None, {"payload": [str(_("must be an object"))]}
    serializer = PAYLOADS[command_type](data=payload)
    if serializer.is_valid():
        return dict(serializer.validated_data), {}
    from coffeeshop.api.errors import flatten_field_errors

    return None, flatten_field_errors(serializer.errors, prefix="payload")
