"""The staff API of rollouts: start one, follow its stages, approve, pause, resume, abort, roll back."""

import django_filters
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Capability
from coffeeshop.api.filtering import IdFilter
from operations.api.serializers import ROW_ID, BatchTargetSerializer
from operations.services import batch_targets
from recipes.models import RecipePackage, Rollout, RolloutMachine
from recipes.services import rollouts
from recipes.services.rollout_health import health_of


class StageSizeSerializer(serializers.Serializer):
    count = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    percent = serializers.FloatField(required=False, min_value=0.01, max_value=100)

    def validate(self, attrs):
        if len(attrs) != 1:
            raise serializers.ValidationError(_("give either count or percent"))
        return attrs


class StartRolloutSerializer(serializers.Serializer):
    package_id = serializers.IntegerField(**ROW_ID)
    device_ids = serializers.ListField(
        child=serializers.IntegerField(**ROW_ID), required=False, max_length=50_000
    )
    filter = BatchTargetSerializer(required=False)
    canary = StageSizeSerializer()
    wave = StageSizeSerializer(required=False)
    success_threshold_pct = serializers.IntegerField(min_value=1, max_value=100, default=90)
    failure_threshold_pct = serializers.IntegerField(min_value=1, max_value=100, default=20)
    auto_advance = serializers.BooleanField(default=True)
    send_upgrade_command = serializers.BooleanField(default=False)

    def validate(self, attrs):
        if ("device_ids" in attrs) == ("filter" in attrs):
            raise serializers.ValidationError({"device_ids": [_("give either device_ids or filter")]})
        return attrs


class RolloutSerializer(serializers.ModelSerializer):
    package_id = serializers.IntegerField(read_only=True)
    package_version = serializers.CharField(source="package.version", read_only=True)
    previous_package_id = serializers.IntegerField(read_only=True, allow_null=True)
    rollback_of_id = serializers.IntegerField(read_only=True, allow_null=True)
    created_by = serializers.CharField(
        source="created_by.email", read_only=True, allow_null=True, default=None
    )
    stages = serializers.SerializerMethodField()

    class Meta:
        model = Rollout
        fields = [
            "id",
            "merchant_id",
            "package_id",
            "package_version",
            "previous_package_id",
            "rollback_of_id",
            "status",
            "halted_reason",
            "send_upgrade_command",
            "success_threshold_pct",
            "failure_threshold_pct",
            "auto_advance",
            "created_by",
            "created_at",
            "finished_at",
            "stages",
        ]
        read_only_fields = fields

    def get_stages(self, rollout) -> list[dict]:
        """Each stage's machines by status: pending, offered, installed, failed, superseded, withdrawn."""
        progress = self.context.get("progress")
        if progress is None or rollout.pk not in progress:
            progress = rollouts.progress_of([rollout.pk])
        return progress[rollout.pk]


class PackageHealthSerializer(serializers.Serializer):
    version = serializers.CharField()
    machines = serializers.IntegerField()
    orders = serializers.IntegerField()
    sales = serializers.DictField(
        child=serializers.CharField(), help_text=_("By currency, paid at the machine.")
    )
    failed_brews = serializers.IntegerField()
    failed_brew_rate_pct = serializers.FloatField(allow_null=True)


class RolloutDetailSerializer(RolloutSerializer):
    health = serializers.SerializerMethodField()

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "health"]
        read_only_fields = fields

    @extend_schema_field(PackageHealthSerializer(many=True))
    def get_health(self, rollout) -> list[dict]:
        """Per package version over the rollout's window, this rollout's package first (README: Rollouts)."""
        return health_of(rollout)


class RolloutMachineSerializer(serializers.ModelSerializer):
    device_serial = serializers.CharField(source="device.serial", read_only=True)
    stage = serializers.IntegerField(source="stage.index", read_only=True)

    class Meta:
        model = RolloutMachine
        fields = [
            "device_id",
            "device_serial",
            "stage",
            "status",
            "previous_version",
            "command_id",
            "offered_at",
            "finished_at",
            "error",
        ]
        read_only_fields = fields


class RolloutFilter(django_filters.FilterSet):
    merchant_id = IdFilter(field_name="merchant_id")
    package_id = IdFilter(field_name="package_id")
    status = django_filters.ChoiceFilter(choices=Rollout.Status.choices)

    class Meta:
        model = Rollout
        fields = ["merchant_id", "package_id", "status"]


class RolloutViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Packages rolled out in stages. The list shows each rollout's stages with their machines by
    status (one query for the page); a rollout's detail adds its health per package version."""

    serializer_class = RolloutSerializer
    filterset_class = RolloutFilter
    ordering_fields = ["created_at"]
    write_capability = Capability.OPERATE_DEVICES

    def get_queryset(self):
        return Rollout.objects.for_user(self.request.user).select_related("package", "created_by")

    def get_serializer_class(self):
        """A rollout's own page carries its health per package version (a few queries); the list does not."""
        return RolloutDetailSerializer if self.action == "retrieve" else super().get_serializer_class()

    def get_serializer(self, *args, **kwargs):
        """A page of rollouts reads every stage's progress in one query."""
        if args and isinstance(args[0], list):
            kwargs.setdefault("context", self.get_serializer_context())["progress"] = rollouts.progress_of(
                [r.pk for r in args[0]]
            )
        return super().get_serializer(*args, **kwargs)

    def _reply(self, rollout, code=status.HTTP_200_OK):
        return Response(self.get_serializer(self.get_queryset().get(pk=rollout.pk)).data, status=code)

    @extend_schema(request=StartRolloutSerializer, responses={201: RolloutSerializer})
    def create(self, request):
        """Roll a built package out to machines chosen by `device_ids` or `filter` (as command batches
        choose them); only machines of a model and firmware the package supports are taken. The canary
        is offered at once."""
        form = StartRolloutSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        package = RecipePackage.objects.for_user(request.user).filter(pk=data["package_id"]).first()
        if package is None:
            raise serializers.ValidationError({"package_id": [_("unknown package")]})
        if "device_ids" in data:
            chosen = batch_targets.machines_by_id(request.user, data["device_ids"])
        else:
            chosen = batch_targets.machines_by_filter(request.user, data["filter"])
        rollout = rollouts.start_rollout(
            package=package,
            devices=chosen.devices,
            user=request.user,
            canary=data["canary"],
            wave=data.get("wave"),
            success_threshold_pct=data["success_threshold_pct"],
            failure_threshold_pct=data["failure_threshold_pct"],
            auto_advance=data["auto_advance"],
            send_upgrade_command=data["send_upgrade_command"],
        )
        return self._reply(rollout, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._reply(rollouts.approve_next_stage(self.get_object(), user=request.user))

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._reply(rollouts.pause_rollout(self.get_object()))

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._reply(rollouts.resume_rollout(self.get_object()))

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request, pk=None):
        return self._reply(rollouts.abort_rollout(self.get_object()))

    @extend_schema(request=None, responses={201: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """The previous package, all at once, to the machines that installed this one; this one stops."""
        return self._reply(rollouts.roll_back(self.get_object(), user=request.user), status.HTTP_201_CREATED)

    @extend_schema(responses=RolloutMachineSerializer(many=True))
    @action(detail=True, serializer_class=RolloutMachineSerializer, filterset_class=None)
    def machines(self, request, pk=None):
        rollout = self.get_object()
        page = self.paginate_queryset(
            rollout.machines.select_related("device", "stage").order_by("stage__index", "device_id")
        )
        return self.get_paginated_response(RolloutMachineSerializer(page, many=True).data)


ROUTES = [("rollouts", RolloutViewSet, "rollout")]
