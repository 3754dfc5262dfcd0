"""GET /api/v1/dashboard/summary: the dashboard's figures, from the selector the admin's home page uses."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from operations.dashboard import dashboard_summary, scope_for


class DashboardQuerySerializer(serializers.Serializer):
    from_ = serializers.DateField(required=False, help_text="First local day (default: 6 days before `to`).")
    to = serializers.DateField(required=False, help_text="Last local day, included (default: today).")
    merchant_id = serializers.IntegerField(required=False, min_value=1)
    location = serializers.IntegerField(required=False, min_value=1)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # the parameter is `from`, a Python keyword
        return fields


class DashboardSummaryView(APIView):
    sales_from_orders = False  # the benchmark's twin of this view sets it (bench/urls.py)

    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description="First local day, YYYY-MM-DD."),
            OpenApiParameter("to", str, description="Last local day, YYYY-MM-DD, included."),
            OpenApiParameter("merchant_id", int),
            OpenApiParameter("location", int),
        ],
        responses={200: dict},
    )
    def get(self, request):
        query = DashboardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        given = query.validated_data
        scope = scope_for(
            request.user,
            first_day=given.get("from"),
            last_day=given.get("to"),
            merchant_id=given.get("merchant_id"),
            location_id=given.get("location"),
        )
        return Response(dashboard_summary(scope, from_orders=self.sales_from_orders))
