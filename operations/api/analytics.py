"""GET /api/v1/analytics/sales and /uptime: the Analytics page's figures; POST /api/v1/analytics/exports:
one of them as a CSV or XLSX file, written by a background job (the same jobs API as order exports)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Capability
from operations.analytics import DIMENSIONS, report_header, sales_by, uptime_per_day
from operations.api.dashboard import DashboardQuerySerializer
from operations.api.serializers import TaskJobSerializer
from operations.dashboard import scope_for
from operations.services.analytics_export import FORMATS, REPORTS, start_analytics_export
from operations.tasks import export_analytics

RANGE_PARAMETERS = [
    OpenApiParameter("from", str, description="First local day, YYYY-MM-DD (default: 6 days before `to`)."),
    OpenApiParameter("to", str, description="Last local day, YYYY-MM-DD, included (default: today)."),
    OpenApiParameter("merchant_id", int),
    OpenApiParameter("location", int),
]


class SalesQuerySerializer(DashboardQuerySerializer):
    dimension = serializers.ChoiceField(choices=DIMENSIONS)


class ExportSerializer(serializers.Serializer):
    report = serializers.ChoiceField(choices=REPORTS)
    dimension = serializers.ChoiceField(choices=DIMENSIONS, required=False, help_text="For the sales report.")
    format = serializers.ChoiceField(choices=FORMATS, default="csv")
    filters = DashboardQuerySerializer(required=False)


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _scope_of(request, given: dict):
    return scope_for(
        request.user,
        first_day=given.get("from"),
        last_day=given.get("to"),
        merchant_id=given.get("merchant_id"),
        location_id=given.get("location"),
    )


class AnalyticsSalesView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("dimension", str, enum=DIMENSIONS, required=True), *RANGE_PARAMETERS],
        responses={200: dict},
    )
    def get(self, request):
        given = _validated(SalesQuerySerializer, request.query_params)
        scope = _scope_of(request, given)
        dimension = given["dimension"]
        return Response({**report_header(scope), "dimension": dimension, "rows": sales_by(scope, dimension)})


class AnalyticsUptimeView(APIView):
    @extend_schema(parameters=RANGE_PARAMETERS, responses={200: dict})
    def get(self, request):
        scope = _scope_of(request, _validated(DashboardQuerySerializer, request.query_params))
        return Response({**report_header(scope), **uptime_per_day(scope)})


class AnalyticsExportView(APIView):
    write_capability = Capability.VIEW  # an export is a read: every role that reads may export

    @extend_schema(request=ExportSerializer, responses={202: TaskJobSerializer})
    def post(self, request):
        given = _validated(ExportSerializer, request.data)
        filters = given.get("filters", {})
        job = start_analytics_export(
            request.user,
            report=given["report"],
            file_format=given["format"],
            dimension=given.get("dimension"),
            first_day=filters.get("from"),
            last_day=filters.get("to"),
            merchant_id=filters.get("merchant_id"),
            location_id=filters.get("location"),
            enqueue=export_analytics.delay,
        )
        return Response(TaskJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
