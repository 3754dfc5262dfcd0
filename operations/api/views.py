from django.http import FileResponse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Capability
from devices.selectors import devices_for
from operations import selectors, services
from operations.api import serializers
from operations.filters import AlarmFilter, CommandFilter
from operations.models import CommandBatch
from operations.services import alarms, batch_targets, commands
from operations.services.job_files import open_job_file
from operations.services.jobs import download_content_type
from operations.tasks import dispatch_command_batch


def _validated(request, serializer_class) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class TaskJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's background jobs (every job for platform staff): progress, cancel, download."""

    serializer_class = serializers.TaskJobSerializer
    filterset_fields = ["kind", "status"]
    ordering_fields = ["created_at"]
    write_capability = Capability.VIEW  # anyone may cancel their own job

    def get_queryset(self):
        return selectors.jobs_for(self.request.user).order_by("-created_at")

    @extend_schema(request=None, responses=serializers.TaskJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(serializers.TaskJobSerializer(services.cancel_job(self.get_object())).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="The job's file")})
    @action(detail=True)
    def download(self, request, pk=None):
        job = self.get_object()
        opened, filename = open_job_file(job)
        return FileResponse(
            opened, as_attachment=True, filename=filename, content_type=download_content_type(job)
        )


class DeviceCommandsView(APIView):
    """POST /api/v1/devices/{id}/commands: send one machine a command; GET: its recent commands."""

    write_capability = Capability.OPERATE_DEVICES

    @extend_schema(
        request=serializers.SendCommandSerializer, responses={201: serializers.RemoteCommandSerializer}
    )
    def post(self, request, device_id):
        device = get_object_or_404(devices_for(request.user), pk=device_id)
        data = _validated(request, serializers.SendCommandSerializer)
        command = commands.send_command(
            device, data.pop("type"), data.pop("payload"), user=request.user, **data
        )
        return Response(serializers.RemoteCommandSerializer(command).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=serializers.RemoteCommandSerializer(many=True))
    def get(self, request, device_id):
        device = get_object_or_404(devices_for(request.user), pk=device_id)
        recent = selectors.commands_for(request.user).filter(device=device).order_by("-created_at")[:50]
        return Response(serializers.RemoteCommandSerializer(recent, many=True).data)


class CommandViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = serializers.RemoteCommandSerializer
    filterset_class = CommandFilter
    ordering_fields = ["created_at", "finished_at"]
    lookup_value_regex = "[0-9a-f-]{36}"
    write_capability = Capability.OPERATE_DEVICES

    def get_queryset(self):
        return selectors.commands_for(self.request.user).order_by("-created_at")

    @extend_schema(request=None, responses=serializers.RemoteCommandSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(self.get_serializer(commands.cancel_command(self.get_object())).data)


class CommandBatchViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """One command to chosen machines or to every machine matching a filter, with per-state counts."""

    serializer_class = serializers.CommandBatchSerializer
    ordering_fields = ["created_at"]
    write_capability = Capability.OPERATE_DEVICES

    def get_queryset(self):
        return selectors.batches_for(self.request.user).order_by("-created_at")

    @extend_schema(
        request=serializers.CreateBatchSerializer,
        responses={202: serializers.CommandBatchSerializer},
        description=(
            "Resolve the machines (those the caller may see), record the batch and queue the background "
            "job that creates one command per machine. The reply is the batch with its job (`job.progress` "
            "0–100) and per-state `counts`, which grow while the job runs: follow it with "
            "`GET /commands/batches/{id}` or `GET /jobs/{job.id}`; `POST /jobs/{job.id}/cancel` stops it "
            "(the commands made so far stay)."
        ),
    )
    def create(self, request):
        data = _validated(request, serializers.CreateBatchSerializer)
        if "device_ids" in data:
            chosen = batch_targets.machines_by_id(request.user, data["device_ids"])
        else:
            chosen = batch_targets.machines_by_filter(request.user, data["filter"])
        batch = commands.start_batch(
            chosen.devices,
            data["type"],
            data["payload"],
            user=request.user,
            target=chosen.target,
            enqueue=dispatch_command_batch.delay,
            expires_in_s=data["expires_in_s"],
            max_attempts=data["max_attempts"],
            run_when_idle=data["run_when_idle"],
        )
        return Response(
            self.get_serializer(self.get_queryset().get(pk=batch.pk)).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=None, responses=serializers.CommandBatchSerializer)
    @action(detail=True, methods=["post"])
    def retry_failed(self, request, pk=None):
        commands.retry_failed(self._own_batch())
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=None, responses=serializers.CommandBatchSerializer)
    @action(detail=True, methods=["post"])
    def cancel_pending(self, request, pk=None):
        commands.cancel_pending(self._own_batch())
        return Response(self.get_serializer(self.get_object()).data)

    def _own_batch(self) -> CommandBatch:
        """Retrying or canceling acts on the whole batch, so only someone who sees all of it may."""
        batch = self.get_object()
        if not commands.may_act_on_whole_batch(self.request.user, batch):
            raise exceptions.PermissionDenied(_("This batch includes machines of other merchants."))
        return batch


class AlarmViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = serializers.AlarmSerializer
    filterset_class = AlarmFilter
    search_fields = ["device__serial", "device__alias", "message"]
    ordering_fields = ["last_seen_at", "first_seen_at", "severity", "count"]
    write_capability = Capability.OPERATE_DEVICES

    def get_queryset(self):
        return selectors.alarms_for(self.request.user).order_by("-last_seen_at")

    @extend_schema(request=None, responses=serializers.AlarmSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        return Response(
            self.get_serializer(alarms.acknowledge_alarm(self.get_object(), user=request.user)).data
        )

    @extend_schema(request=serializers.ClearAlarmSerializer, responses=serializers.AlarmSerializer)
    @action(detail=True, methods=["post"])
    def clear(self, request, pk=None):
        reason = _validated(request, serializers.ClearAlarmSerializer)["reason"]
        cleared = alarms.clear_alarm_by_hand(self.get_object(), user=request.user, reason=reason)
        return Response(self.get_serializer(cleared).data)

    @extend_schema(responses=None)
    @action(detail=False)
    def counts(self, request):
        return Response(selectors.active_alarm_counts(request.user))
