"""The machine protocol, version 1 (docs/protocol.md): every endpoint a machine calls.

This is the edge where a machine meets the back office, the one place that calls several apps'
services in one request. Read it top to bottom. Views parse, call a service and reply; they decide
nothing. Machines send no cookies, so none of these views is subject to CSRF, and they are throttled
per machine (`DeviceRateThrottle`), never per user.
"""

import functools

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from coffeeshop.api import parsers as bounded_json
from coffeeshop.api.envelope import envelope
from coffeeshop.api.errors import PayloadTooLarge, error_body, flatten_field_errors, validation_message
from coffeeshop.api.throttling import DeviceRateThrottle, RegistrationThrottle
from coffeeshop.exceptions import Conflict
from coffeeshop.protocol.auth import (
    DevicePrincipal,
    DeviceTokenAuthentication,
    IsTheDeviceInPath,
    MalformedAuthorization,
    device_token_of,
)
from coffeeshop.protocol.plain_orders import plain_order_input
from coffeeshop.protocol.serializers import (
    CommandResultSerializer,
    HeartbeatSerializer,
    MaterialsReportSerializer,
    OrderSerializer,
    RegisterSerializer,
    plain_heartbeat_reading,
)
from devices import services as devices
from devices.live import bins_payload
from devices.models import Device
from devices.selectors import merchant_id_of_device as device_merchant_id
from inventory import services as stock
from inventory.selectors import unknown_material_codes
from operations.services import alarms, commands
from operations.services.pending_flags import pending_commands_key
from orders import services as orders
from orders.services import lone_order
from recipes.api.packages import package_response
from recipes.services import packages, rollouts


def server_time() -> str:
    return timezone.now().isoformat().replace("+00:00", "Z")


class MachineView(APIView):
    """Base of every authenticated machine endpoint."""

    is_machine_endpoint = True
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsTheDeviceInPath]
    throttle_classes = [DeviceRateThrottle]

    def parse(self, serializer_class):
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer


def answered_first_by(lane, full):
    """The view `full`, behind a `lane(request, device_id)` that answers the common case without DRF
    or returns None for `full` to answer. wraps() copies csrf_exempt and cls, so the URL and the
    OpenAPI schema see the DRF view."""

    @functools.wraps(full)
    def view(request, *args, **kwargs):
        return lane(request, kwargs["device_id"]) or full(request, *args, **kwargs)

    return view


def machine_ref(identity) -> Device:
    """The calling machine as a model instance without a query (its id and merchant are known)."""
    return Device(pk=identity.device_id, merchant_id=identity.merchant_id)


def check_materials_known(identity, bins) -> None:
    """A code that is not an enabled material of the machine's merchant is a 400 naming the bin:
    `bins.<position>.material`."""
    unknown = unknown_material_codes(identity.merchant_id, (b.material_code for b in bins))
    if unknown:
        raise exceptions.ValidationError(
            {
                "bins": [
                    {"material": [_("unknown material code %(code)s") % {"code": b.material_code}]}
                    if b.material_code in unknown
                    else {}
                    for b in bins
                ]
            }
        )


class RegisterView(APIView):
    """POST /api/v1/devices/register: a machine joins its merchant's fleet (201 new, 200 known serial)."""

    is_machine_endpoint = True
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [RegistrationThrottle]

    @extend_schema(
        request=RegisterSerializer,
        responses=inline_serializer(
            "Registration",
            {
                "device_id": serializers.CharField(),
                "token": serializers.CharField(),
                "heartbeat_interval_s": serializers.IntegerField(),
                "server_time": serializers.DateTimeField(),
            },
        ),
    )
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        registration = devices.register_device(**serializer.validated_data)
        return Response(
            {
                "device_id": str(registration.device.pk),
                "token": registration.token,
                "heartbeat_interval_s": settings.HEARTBEAT_INTERVAL_S,
                "server_time": server_time(),
            },
            status=status.HTTP_201_CREATED if registration.created else status.HTTP_200_OK,
        )


def heartbeat_reply(commands: list[dict], desired_package: dict | None = None) -> dict:
    return {
        "server_time": server_time(),
        "heartbeat_interval_s": settings.HEARTBEAT_INTERVAL_S,
        "commands": commands,
        "desired_package": desired_package,
    }


def _materials_known(device_id: str, bins) -> bool:
    """Whether the bins name only enabled materials of the merchant owning `device_id`, known before the
    token is checked (which happens in Redis): a token of another machine fails there, and this
    answer is then never used."""
    merchant_id = device_merchant_id(device_id)
    return merchant_id is not None and not unknown_material_codes(
        merchant_id, (b.material_code for b in bins)
    )


def quiet_heartbeat(request, device_id: str) -> JsonResponse | None:
    """A heartbeat whose state is unchanged, answered in one Redis round trip, or None for the full path.

    Nearly every heartbeat is "still fine", now and then with bin levels a percent lower. This answers
    those without DRF: the token is checked, the request counted and the readings, bin levels included,
    written behind inside one Redis script (`record_quiet_heartbeat`); the periodic flush writes them
    to the database, pushes them live and opens or clears low-stock alarms.
    Anything else (no Redis, an uncached token, a changed state, commands waiting, a report not in its
    plain form, bad input) returns None and `HeartbeatView` handles it, errors included, as if this
    never ran.
    """
    if (
        not settings.ENABLE_DEVICE_TOKEN
        or request.method != "POST"
        or request.content_type != "application/json"
    ):
        return None
    try:
        token = device_token_of(request.META.get("HTTP_AUTHORIZATION", ""))
    except MalformedAuthorization:
        return None
    if token is None:
        return None
    try:
        reading = plain_heartbeat_reading(bounded_json.loads(request.body.decode()))
    except (ValueError, RequestDataTooBig):
        return None
    if reading is None or (reading.bins and not _materials_known(device_id, reading.bins)):
        return None
    throttle = DeviceRateThrottle()
    identity = devices.record_quiet_heartbeat(
        token,
        device_id,
        reading,
        rate=(throttle.num_requests, throttle.duration),
        busy_keys=(pending_commands_key(device_id), rollouts.desired_key(device_id)),
    )
    if identity is None:
        return None
    request.user = DevicePrincipal(identity)  # who the access line names, as DRF does on the full path
    return JsonResponse(envelope(heartbeat_reply([])), json_dumps_params={"separators": (",", ":")})


class HeartbeatView(MachineView):
    """POST /api/v1/devices/{device_id}/status: the machine's state; the reply carries its work."""

    @classmethod
    def as_view(cls, **initkwargs):
        return answered_first_by(quiet_heartbeat, super().as_view(**initkwargs))

    @extend_schema(
        request=HeartbeatSerializer,
        responses=inline_serializer(
            "HeartbeatReply",
            {
                "server_time": serializers.DateTimeField(),
                "heartbeat_interval_s": serializers.IntegerField(),
                "commands": serializers.ListField(child=serializers.DictField()),
                "desired_package": serializers.DictField(allow_null=True),
            },
        ),
    )
    def post(self, request, device_id):
        reading = self.parse(HeartbeatSerializer).to_reading()
        refills_flagged = False
        if reading.bins:
            check_materials_known(request.auth, reading.bins)
            refills_flagged = any(b.refilled for b in reading.bins)
        before = stock.levels_before_refill(request.auth.device_id, reading.bins) if refills_flagged else {}
        outcome = devices.record_heartbeat(request.auth, reading)
        if refills_flagged:  # rare; should this fail, the forecast books the refill from the level
            stock.record_machine_refills(request.auth.device_id, reading.bins, before)
        alarms.after_heartbeat(
            outcome.device if outcome else machine_ref(request.auth), reading.temperature_c, outcome
        )
        offer = rollouts.desired_package_for(request.auth.device_id)
        return Response(
            heartbeat_reply(
                commands.lease_deliverable_commands(
                    request.auth.device_id, state=reading.state, channel="heartbeat"
                ),
                rollouts.machine_reports_package(request.auth.device_id, reading.package_version, offer),
            )
        )


class MaterialsReportView(MachineView):
    """POST /api/v1/devices/{device_id}/materials/report: bin levels and refills."""

    @extend_schema(
        request=MaterialsReportSerializer,
        responses=inline_serializer(
            "MaterialsReportReply",
            {
                "server_time": serializers.DateTimeField(),
                "bins": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    def post(self, request, device_id):
        readings = self.parse(MaterialsReportSerializer).to_readings()
        check_materials_known(request.auth, readings)
        with transaction.atomic():
            before = stock.levels_before_refill(request.auth.device_id, readings)
            bins = devices.record_bin_report(request.auth, readings)
            stock.record_machine_refills(request.auth.device_id, readings, before)
        alarms.bins_reported(machine_ref(request.auth), bins)
        return Response(
            {
                "server_time": server_time(),
                "bins": bins_payload(bins, judged=False),
            }
        )


def _rejected(order_id, error: dict) -> dict:
    return {"order_id": order_id, "result": orders.REJECTED, "error": error}


def _validation_error(serializer) -> dict:
    fields = flatten_field_errors(serializer.errors)
    return error_body(400, validation_message(fields), {"fields": fields})["error"]


def quick_order(request, device_id: str) -> JsonResponse | None:
    """A lone new order in its plain form, answered without DRF, or None for the full path.

    Nearly every order a machine sends is new and well formed. This takes those in one Redis round
    trip (the token checked against its cached identity, the request counted: `claim_quiet_request`)
    and one to PostgreSQL (`lone_order.insert_lone_order`). Anything else (no Redis, SQLite, an
    uncached or foreign token, a throttled machine, a backlog, a field out of its plain form, a
    payment method to look up, an order already received) returns None, uncounted, and
    `OrdersCreateView` answers it as if this never ran: the reply is the same either way.
    """
    if (
        not settings.ORDER_QUICK_LANE
        or not settings.ENABLE_DEVICE_TOKEN
        or request.method != "POST"
        or request.content_type != "application/json"
        or request.content_params.get("charset", "utf-8").lower() not in ("utf-8", "utf8")
    ):
        return None
    try:
        token = device_token_of(request.META.get("HTTP_AUTHORIZATION", ""))
        order = plain_order_input(bounded_json.loads(request.body.decode()))
    except (MalformedAuthorization, ValueError, RequestDataTooBig):
        return None
    if token is None or order is None or not lone_order.takes_lone_order(order):
        return None
    throttle = DeviceRateThrottle()
    rate = (throttle.num_requests, throttle.duration)
    identity = devices.claim_quiet_request(token, device_id, rate)
    if identity is None:
        return None
    try:
        saved = lone_order.insert_lone_order(identity.device_id, order, timezone.now())
    except BaseException:
        devices.release_quiet_request(token, rate)  # a 503 the full path answers counts once
        raise
    if saved is None:
        devices.release_quiet_request(token, rate)
        return None
    request.user = DevicePrincipal(identity)  # who the access line names, as DRF does on the full path
    return JsonResponse(
        envelope({"order_id": order.order_id, "result": orders.ACCEPTED}),
        status=status.HTTP_201_CREATED,
        headers={"Vary": "Accept", "Allow": "POST, OPTIONS"},
        json_dumps_params={"separators": (",", ":"), "ensure_ascii": False},
    )


class OrdersCreateView(MachineView):
    """POST /api/v1/devices/{device_id}/orders/create: one order, or {"orders": [...]} (an offline backlog).

    Idempotent on the machine's order_id. A backlog answers one result per order, in order; a bad order
    is rejected with its reason and never costs the good ones. A lone new order takes `quick_order`.
    """

    @classmethod
    def as_view(cls, **initkwargs):
        return answered_first_by(quick_order, super().as_view(**initkwargs))

    @extend_schema(request=OrderSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, device_id):
        if isinstance(request.data, dict) and "orders" in request.data:
            return self.backlog(request.data["orders"])
        order = orders.ingest_orders(
            request.auth.device_id, [OrderSerializer.to_input(self.parse(OrderSerializer).validated_data)]
        )[0]
        if order.result == orders.REJECTED:
            raise Conflict(order.error["message"], details=order.error["details"])
        return Response(
            {"order_id": order.order_id, "result": order.result},
            status=status.HTTP_201_CREATED if order.result == orders.ACCEPTED else status.HTTP_200_OK,
        )

    def backlog(self, raw_orders):
        if not isinstance(raw_orders, list):
            raise exceptions.ValidationError({"orders": [_("must be a list of orders")]})
        if len(raw_orders) > settings.ORDER_BACKLOG_LIMIT:
            raise PayloadTooLarge(
                _("A backlog carries at most %(limit)d orders; send the rest in another request.")
                % {"limit": settings.ORDER_BACKLOG_LIMIT}
            )
        replies: list[dict | None] = [None] * len(raw_orders)
        valid: list[tuple[int, object]] = []
        for position, raw in enumerate(raw_orders):
            serializer = OrderSerializer(data=raw)
            if serializer.is_valid():
                valid.append((position, OrderSerializer.to_input(serializer.validated_data)))
            else:
                order_id = raw.get("order_id") if isinstance(raw, dict) else None
                replies[position] = _rejected(order_id, _validation_error(serializer))
        outcomes = orders.ingest_orders(self.request.auth.device_id, [o for _, o in valid]) if valid else []
        for (position, _order), outcome in zip(valid, outcomes, strict=True):
            replies[position] = (
                _rejected(outcome.order_id, outcome.error)
                if outcome.result == orders.REJECTED
                else {"order_id": outcome.order_id, "result": outcome.result}
            )
        return Response({"results": replies})


class PendingCommandsView(MachineView):
    """GET /api/v1/devices/{device_id}/commands/pending: pull deliverable commands (each leased)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, device_id):
        return Response(
            {
                "commands": commands.lease_deliverable_commands(
                    request.auth.device_id, state=None, channel="pull"
                )
            }
        )


class CommandResultView(MachineView):
    """POST /api/v1/devices/{device_id}/commands/{command_id}/result: how a command went."""

    @extend_schema(request=CommandResultSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, device_id, command_id):
        data = self.parse(CommandResultSerializer).validated_data
        command, _changed = commands.record_command_result(
            request.auth.device_id,
            command_id,
            status=data["status"],
            result=data["result"],
            error=data["error"],
        )
        return Response({"command_id": str(command.pk), "status": command.status})


class AnyAccept(BaseContentNegotiation):
    """A download answers its bytes (and an error its JSON envelope) whatever `Accept` the machine's HTTP
    client sends: `application/octet-stream` or `*/*` must not make it a 400."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class PackageDownloadView(MachineView):
    """GET /api/v1/devices/{device_id}/packages/{package_id}: a ready package of the machine's merchant,
    byte for byte (its SHA-256 is the `sha256` the machine was given); any other is a 404."""

    content_negotiation_class = AnyAccept

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.BINARY})
    def get(self, request, device_id, package_id):
        package = packages.package_for_machine(request.auth.merchant_id, package_id)
        if package is None:
            raise exceptions.NotFound(_("No such package."))
        return package_response(package, as_attachment=False)
