from datetime import timedelta

from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.models import Capability
from accounts.time_zones import merchant_zone
from devices import history_chart, selectors, services
from devices.api import serializers
from devices.filters import DeviceFilter, LocationFilter, StatusHistoryFilter
from devices.models import DeviceBin, StatusEvent
from devices.summary import other_apps_parts


class LocationViewSet(viewsets.ModelViewSet):
    serializer_class = serializers.LocationSerializer
    filterset_class = LocationFilter
    search_fields = ["name", "address", "city"]
    ordering_fields = ["name", "city", "created_at"]
    write_capability = Capability.MANAGE_MERCHANTS

    def get_queryset(self):
        return selectors.locations_for(self.request.user).order_by("merchant_id", "name")

    def perform_create(self, serializer):
        serializer.instance = services.create_location(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_location(serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_location(instance)


class DeviceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The fleet as staff see it. Machines register themselves; staff edit alias, location and timeout."""

    filterset_class = DeviceFilter
    search_fields = ["serial", "alias", "model"]
    ordering_fields = [
        "serial",
        "alias",
        "last_seen_at",
        "status_changed_at",
        "temperature_c",
        "registered_at",
    ]
    write_capability = Capability.OPERATE_DEVICES

    def get_queryset(self):
        queryset = selectors.devices_for(self.request.user).order_by("merchant_id", "serial")
        if self.action != "list":
            queryset = queryset.prefetch_related(
                Prefetch("bins", queryset=DeviceBin.objects.order_by("index"))
            )
        return queryset

    def get_serializer_class(self):
        return serializers.DeviceSerializer if self.action == "list" else serializers.DeviceDetailSerializer

    @extend_schema(request=serializers.DeviceUpdateSerializer, responses=serializers.DeviceDetailSerializer)
    def partial_update(self, request, pk=None):
        device = self.get_object()
        changes = serializers.DeviceUpdateSerializer(data=request.data, context={"request": request})
        changes.is_valid(raise_exception=True)
        values = dict(changes.validated_data)
        if "location_id" in values:
            values["location"] = values.pop("location_id")
        services.update_device_settings(device, **values)
        return Response(serializers.DeviceDetailSerializer(self.get_object()).data)

    @extend_schema(responses=serializers.DeviceSummarySerializer)
    @action(detail=True)
    def summary(self, request, pk=None):
        device = self.get_object()
        now = timezone.now()
        summary = {
            **selectors.device_summary(device, now),
            "uptime_pct_24h": selectors.uptime_pct(device, now - timedelta(hours=24), now),
            "low_bins": selectors.low_bin_indexes(device),
            "last_heartbeat_at": device.last_seen_at,
            "package_version": device.package_version,
            **other_apps_parts(device, now),
        }
        recent = selectors.status_history_for(device).order_by("-recorded_at")[:20]
        return Response(
            serializers.DeviceSummarySerializer({"device": device, "recent_history": recent, **summary}).data
        )

    @extend_schema(responses=serializers.DeviceBinSerializer(many=True))
    @action(detail=True, pagination_class=None, filterset_class=None)
    def bins(self, request, pk=None):
        device = self.get_object()
        return Response(serializers.DeviceBinSerializer(device.bins.all(), many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Records at or after this time."),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Records before this time."),
            OpenApiParameter("event", str, enum=StatusEvent.values),
            OpenApiParameter("ordering", str, enum=["recorded_at", "-recorded_at"]),
        ],
        responses=serializers.StatusHistorySerializer(many=True),
    )
    @action(detail=True, filter_backends=[])
    def history(self, request, pk=None):
        # Filtered here, not by the view's filter backends: those filter the devices that `get_object`
        # looks the machine up in, and a FilterSet of history records cannot filter devices.
        device = self.get_object()
        records = StatusHistoryFilter(
            request.query_params, selectors.status_history_for(device).order_by("-recorded_at")
        )
        if not records.is_valid():
            raise ValidationError(records.errors)
        page = self.paginate_queryset(records.qs)
        return self.get_paginated_response(serializers.StatusHistorySerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Default: 7 days before `to`."),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Default: now."),
            OpenApiParameter(
                "resolution", str, enum=history_chart.RESOLUTIONS, description="Default: hour up to 7 days."
            ),
        ],
        responses=serializers.HistoryChartSerializer,
    )
    @action(detail=True, filter_backends=[], pagination_class=None, url_path="history/chart")
    def history_chart(self, request, pk=None):
        """Online %, state changes and temperature per hour or per local day, from the folded hours."""
        device = self.get_object()
        query = serializers.HistoryChartQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end, resolution = history_chart.chart_range(
            query.validated_data.get("from"),
            query.validated_data.get("to"),
            query.validated_data.get("resolution"),
            timezone.now(),
        )
        zone = merchant_zone(device.merchant)
        points = history_chart.device_history(device, start, end, resolution, zone)
        data = {
            "time_zone": zone.key,
            "resolution": resolution,
            "points": [{**point, "at": point["at"].isoformat()} for point in points],
        }
        return Response(serializers.HistoryChartSerializer(data).data)

    @extend_schema(request=None, responses=serializers.TokenSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request, pk=None):
        return Response({"token": services.rotate_device_token(self.get_object())})

    @extend_schema(request=None, responses=None)
    @action(detail=True, methods=["post"], url_path="revoke-token")
    def revoke_token(self, request, pk=None):
        return Response({"revoked": services.revoke_device_token(self.get_object())})
