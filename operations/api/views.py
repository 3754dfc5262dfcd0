from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.models import Capability
from operations import selectors, services
from operations.api.serializers import TaskJobSerializer
from operations.models import TaskJob


class TaskJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's background jobs (every job for platform staff): progress, cancel, download."""

    serializer_class = TaskJobSerializer
    filterset_fields = ["kind", "status"]
    ordering_fields = ["created_at"]
    write_capability = Capability.VIEW  # anyone may cancel their own job

    def get_queryset(self):
        return selectors.jobs_for(self.request.user).order_by("-created_at")

    @extend_schema(request=None, responses=TaskJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(TaskJobSerializer(services.cancel_job(self.get_object())).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="The job's file")})
    @action(detail=True)
    def download(self, request, pk=None):
        job = self.get_object()
        if job.status != TaskJob.Status.SUCCEEDED or not job.result_file:
            raise NotFound("This job has no file (yet).")
        return FileResponse(
            job.result_file.open("rb"),
            as_attachment=True,
            filename=job.result_file.name.rsplit("/", 1)[-1],
            content_type="text/csv",
        )
