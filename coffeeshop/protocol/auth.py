"""`Authorization: Device <token>`: how a machine proves which machine it is."""

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from coffeeshop.api.throttling import DeviceRateThrottle
from devices.services import identify_device_and_count, identity_of


class MalformedAuthorization(ValueError):
    """The header says `Device` but is not followed by exactly one token."""


def device_token_of(authorization: str) -> str | None:
    """The token of an `Authorization: Device <token>` header (the scheme in any case); None when the
    header is missing or names another scheme. Raises `MalformedAuthorization` for `Device` with no
    token or more than one. Every door a machine knocks at (HTTP, the quiet heartbeat, the WebSocket)
    reads the header with this."""
    parts = authorization.split()
    if not parts or parts[0].lower() != "device":
        return None
    if len(parts) != 2:
        raise MalformedAuthorization(authorization)
    return parts[1]


class DevicePrincipal:
    """request.user for a machine: authenticated, but never staff and never a person."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, identity):
        self.identity = identity

    def __str__(self):
        return f"device:{self.identity.device_id}"


class DeviceTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        try:
            token = device_token_of(get_authorization_header(request).decode("latin-1"))
        except MalformedAuthorization:
            raise exceptions.AuthenticationFailed(
                _("Malformed Authorization header; expected 'Device <token>'.")
            ) from None
        if token is None:
            return self._trusted_path_device(request)
        identity, count = identify_device_and_count(token, DeviceRateThrottle().duration)
        request.device_request_count = count
        if identity is None:
            raise exceptions.AuthenticationFailed(_("Unknown or revoked device token."))
        return DevicePrincipal(identity), identity

    def authenticate_header(self, request):
        return "Device"

    @staticmethod
    def _trusted_path_device(request):
        if settings.ENABLE_DEVICE_TOKEN:
            return None
        device_id = (request.parser_context or {}).get("kwargs", {}).get("device_id", "")
        identity = identity_of(int(device_id)) if str(device_id).isdigit() else None
        return (DevicePrincipal(identity), identity) if identity else None


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Device <token>` in the OpenAPI schema (drf-spectacular finds it by subclassing)."""

    target_class = DeviceTokenAuthentication
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Device")


class IsTheDeviceInPath(BasePermission):
    """A token acts only for its own machine: any other device id in the path is 403."""

    message = _("This token belongs to another device.")

    def has_permission(self, request, view):
        identity = request.auth
        if not isinstance(request.user, DevicePrincipal):
            raise exceptions.NotAuthenticated(
                _("A device token is required: 'Authorization: Device <token>'.")
            )
        return str(identity.device_id) == str(view.kwargs.get("device_id"))
