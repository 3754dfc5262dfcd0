from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Capability
from coffeeshop.api.envelope import EnvelopeBrowsableAPIRenderer, EnvelopeJSONRenderer
from coffeeshop.api.errors import PayloadTooLarge
from inventory import selectors, services
from inventory.api import serializers
from inventory.api.import_jobs import import_job_reply
from inventory.filters import BinFilter, MaterialFilter, RefillFilter
from inventory.models import Refill
from inventory.resources import MaterialResource
from inventory.services.import_jobs import import_is_large, start_material_import
from inventory.services.picklist import csv_filename, pick_list, pick_list_csv
from inventory.tasks import run_material_import

MAX_IMPORT_BYTES = 10 * 1024 * 1024
EXPORT_TYPES = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}


class FileRenderer(renderers.BaseRenderer):
    """Lets `?format=csv|xlsx` through DRF's content negotiation; the export writes the file itself."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class CSVRenderer(FileRenderer):
    media_type, format = "text/csv", "csv"


class XLSXRenderer(FileRenderer):
    media_type, format = EXPORT_TYPES["xlsx"][0], "xlsx"


class FileOrEnvelopeMixin:
    """A view that answers a file (`?format=csv`) answers its errors in the JSON envelope, not a file."""

    def finalize_response(self, request, response, *args, **kwargs):
        renderer = getattr(request, "accepted_renderer", None)
        if isinstance(response, Response) and (renderer is None or isinstance(renderer, FileRenderer)):
            request.accepted_renderer, request.accepted_media_type = (
                EnvelopeJSONRenderer(),
                "application/json",
            )
        return super().finalize_response(request, response, *args, **kwargs)


class MaterialViewSet(
    FileOrEnvelopeMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Each merchant's catalogue. No delete: bins name the codes; a material is disabled instead."""

    serializer_class = serializers.MaterialSerializer
    filterset_class = MaterialFilter
    search_fields = ["code", "name", "supplier"]
    ordering_fields = ["code", "name", "kind", "unit", "low_threshold_pct", "created_at", "updated_at"]
    write_capability = Capability.MANAGE_MATERIALS
    strictly_filtered_actions = ("export",)

    def get_queryset(self):
        return selectors.materials_for(self.request.user).order_by("merchant_id", "code")

    def _written(self, request, partial=False):
        changes = serializers.MaterialWriteSerializer(
            data=request.data, partial=partial, context={"request": request}
        )
        changes.is_valid(raise_exception=True)
        return dict(changes.validated_data)

    @extend_schema(
        request=serializers.MaterialWriteSerializer, responses={201: serializers.MaterialSerializer}
    )
    def create(self, request):
        values = self._written(request)
        merchant = selectors.merchant_to_write_for(request.user, values.pop("merchant_id", None))
        material = services.create_material(merchant=merchant, **values)
        return Response(serializers.MaterialSerializer(material).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.MaterialWriteSerializer, responses=serializers.MaterialSerializer)
    def partial_update(self, request, pk=None):
        material = self.get_object()
        values = self._written(request, partial=True)
        if "merchant_id" in values and values["merchant_id"] != material.merchant_id:
            raise ValidationError({"merchant_id": [_("A material cannot move to another merchant.")]})
        values.pop("merchant_id", None)
        enabled = values.pop("is_enabled", None)
        services.update_material(material, **values)
        if enabled is not None:
            services.set_enabled(material, enabled)
        return Response(serializers.MaterialSerializer(self.get_object()).data)

    @extend_schema(request=None, responses=serializers.MaterialSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        return Response(serializers.MaterialSerializer(services.set_enabled(self.get_object(), False)).data)

    @extend_schema(request=None, responses=serializers.MaterialSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        return Response(serializers.MaterialSerializer(services.set_enabled(self.get_object(), True)).data)

    @extend_schema(
        request={"multipart/form-data": serializers.MaterialImportSerializer},
        responses={
            200: serializers.ImportedRowSerializer(many=True),
            202: serializers.MaterialImportJobSerializer,
        },
    )
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser])
    def import_sheet(self, request):
        """A CSV or XLSX, all or nothing; `dry_run=true` previews it. Any row in error is a 400 whose
        details list the rows in error (`rows`) and every row (`all_rows`). A sheet of more than
        MATERIAL_IMPORT_SYNC_MAX_ROWS rows, or `background=true`, is a background job instead: 202 with
        the job, whose rows and confirmation are under `/api/v1/materials/import-jobs/{id}`."""
        form = serializers.MaterialImportSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise PayloadTooLarge()
        merchant = selectors.merchant_to_write_for(request.user, form.validated_data.get("merchant_id"))
        content = upload.read()
        dataset = services.read_sheet(content)
        dry_run = form.validated_data["dry_run"]
        if form.validated_data["background"] or import_is_large(len(dataset)):
            job = start_material_import(
                merchant=merchant,
                user=request.user,
                content=content,
                file_name=upload.name,
                dry_run=dry_run,
                dataset=dataset,
                enqueue=run_material_import.delay,
            )
            return Response(import_job_reply(job), status=status.HTTP_202_ACCEPTED)
        return Response(services.import_materials(merchant, dataset, dry_run=dry_run))

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(EXPORT_TYPES), required=True)],
        responses={(200, "text/csv"): OpenApiTypes.BINARY},
    )
    @action(
        detail=False,
        renderer_classes=[CSVRenderer, XLSXRenderer, EnvelopeJSONRenderer],
        pagination_class=None,
    )
    def export(self, request):
        """The filtered list (the list's parameters) as a file the import reads back."""
        kind = request.query_params.get("format")
        if kind not in EXPORT_TYPES:
            raise ValidationError({"format": [_("Say csv or xlsx.")]})
        dataset = MaterialResource().export(queryset=self.filter_queryset(self.get_queryset()))
        content_type, extension = EXPORT_TYPES[kind]
        response = HttpResponse(dataset.export(kind), content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="materials.{extension}"'
        return response


class BinViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The fleet's bins, most urgent first. Levels are the machines'; staff change a bin's threshold
    (PATCH) and record refills (POST .../refill)."""

    serializer_class = serializers.BinSerializer
    filterset_class = BinFilter
    ordering_fields = ["level_pct", "empty_at", "reported_at", "last_refilled_at", "remaining"]
    write_capability = Capability.MANAGE_MATERIALS

    def get_queryset(self):
        return selectors.bins_for(self.request.user)

    @extend_schema(request=serializers.BinThresholdSerializer, responses=serializers.BinSerializer)
    def partial_update(self, request, pk=None):
        """`low_threshold_pct`: the bin's own threshold, or null to follow its material's default."""
        form = serializers.BinThresholdSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.set_bin_threshold(self.get_object(), form.validated_data["low_threshold_pct"])
        return Response(serializers.BinSerializer(self.get_object()).data)

    @extend_schema(request=serializers.RefillRequestSerializer, responses={201: serializers.RefillSerializer})
    @action(detail=True, methods=["post"])
    def refill(self, request, pk=None):
        """Staff put `amount` (in the bin's unit) into the bin; more than fits is a 400."""
        form = serializers.RefillRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        refill = services.refill_bin(
            self.get_object(), amount=form.validated_data["amount"], user=request.user
        )
        return Response(serializers.RefillSerializer(refill).data, status=status.HTTP_201_CREATED)


class RefillViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every refill, newest first: by machines (reported or seen in the level) and by staff."""

    serializer_class = serializers.RefillSerializer
    filterset_class = RefillFilter
    ordering_fields = ["refilled_at"]

    def get_queryset(self):
        return (
            Refill.objects.for_user(self.request.user).select_related("user").order_by("-refilled_at", "-pk")
        )


PICK_LIST_PARAMETERS = {"location", "date", "merchant_id", "format"}


class PickListView(FileOrEnvelopeMixin, APIView):
    """What to bring to the machines of one location or several on a visit date (default tomorrow):
    each machine's bins to fill, and the trip's totals per material. `format=csv` for the file."""

    renderer_classes = [EnvelopeJSONRenderer, EnvelopeBrowsableAPIRenderer, CSVRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("location", int, many=True, required=True, description="location id(s)"),
            OpenApiParameter("date", OpenApiTypes.DATE, description="the visit date (default tomorrow)"),
            OpenApiParameter("merchant_id", int),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={200: serializers.PickListSerializer, (200, "text/csv"): OpenApiTypes.BINARY},
    )
    def get(self, request):
        unknown = sorted(set(request.query_params) - PICK_LIST_PARAMETERS)
        if unknown:
            message = _("Unknown parameter. Known: %(known)s.") % {
                "known": ", ".join(sorted(PICK_LIST_PARAMETERS))
            }
            raise ValidationError({name: [message] for name in unknown})
        query = serializers.PickListQuerySerializer.from_query(request.query_params)
        query.is_valid(raise_exception=True)
        picks = pick_list(
            request.user,
            location_ids=query.validated_data["location"],
            visit_date=query.validated_data.get("date"),
            merchant_id=query.validated_data.get("merchant_id"),
        )
        if isinstance(request.accepted_renderer, CSVRenderer):
            response = HttpResponse(pick_list_csv(picks), content_type=EXPORT_TYPES["csv"][0])
            response["Content-Disposition"] = f'attachment; filename="{csv_filename(picks)}"'
            return response
        return Response(serializers.pick_list_data(picks))
