"""Background material imports through the API: the job's state and counts, its rows (page by page,
filtered by status), and the confirmation of a preview."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.models import Capability
from inventory.api.serializers import ImportJobRowSerializer, MaterialImportJobSerializer
from inventory.services.import_jobs import STATUSES, confirm_material_import, import_report
from inventory.tasks import run_material_import
from operations.api.serializers import TaskJobSerializer
from operations.models import TaskJob

BASE = "/api/v1/materials/import-jobs"


def import_job_reply(job: TaskJob) -> dict:
    params = job.params
    counts = params.get("counts")
    previewed = params["dry_run"] and job.status == TaskJob.Status.SUCCEEDED
    kept = job.files_deleted_at is None  # else `job.files_deleted_at` says when they were deleted
    return {
        "id": job.pk,
        "job": TaskJobSerializer(job).data,
        "job_url": f"/api/v1/jobs/{job.pk}",
        "merchant_id": params["merchant"],
        "file_name": params["file_name"],
        "rows": params["rows"],
        "dry_run": params["dry_run"],
        "counts": counts,
        "rows_url": f"{BASE}/{job.pk}/rows" if params.get("report") and kept else None,
        "confirm_url": f"{BASE}/{job.pk}/confirm"
        if previewed and kept and not (counts or {}).get("error")
        else None,
        "preview_id": params.get("preview"),
        "confirm_job_id": params.get("confirm_job"),
    }


class MaterialImportJobViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's background material imports (every one for platform staff)."""

    serializer_class = MaterialImportJobSerializer
    write_capability = Capability.MANAGE_MATERIALS

    def get_queryset(self):
        return TaskJob.objects.for_user(self.request.user).filter(kind=TaskJob.Kind.MATERIAL_IMPORT)

    def retrieve(self, request, pk=None):
        return Response(import_job_reply(self.get_object()))

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=list(STATUSES))],
        responses=ImportJobRowSerializer(many=True),
    )
    @action(detail=True)
    def rows(self, request, pk=None):
        """The job's rows in file order (`?status=error` for the rows in error), a page at a time; an
        empty page until the job has read the file, a 404 (reason "expired") once its files were deleted."""
        wanted = request.query_params.get("status")
        if wanted is not None and wanted not in STATUSES:
            raise ValidationError({"status": [f"one of {', '.join(STATUSES)}"]})
        report = import_report(self.get_object()) or []
        rows = [row for row in report if wanted is None or row["status"] == wanted]
        return self.get_paginated_response(self.paginate_queryset(rows))

    @extend_schema(request=None, responses={202: MaterialImportJobSerializer})
    @action(detail=True, methods=["post"])
    def confirm(self, request, pk=None):
        """Import what the preview showed, as a new job (the same job when confirmed again); a preview
        not finished or with rows in error is a 409."""
        job = confirm_material_import(self.get_object(), user=request.user, enqueue=run_material_import.delay)
        return Response(import_job_reply(job), status=status.HTTP_202_ACCEPTED)
