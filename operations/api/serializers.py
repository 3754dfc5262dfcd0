from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from operations.models import (
    ALARM_LIFECYCLE_FIELDS,
    TASK_JOB_RUN_FIELDS,
    Alarm,
    CommandBatch,
    CommandStatus,
    CommandType,
    RemoteCommand,
    TaskJob,
)
from operations.services.jobs import download_url


class TaskJobSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.email", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = TaskJob
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "params",
            *TASK_JOB_RUN_FIELDS,
            "download_url",
        ]

    def get_download_url(self, job) -> str | None:
        return download_url(job)


class CommandOptionsSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=CommandType.choices)
    payload = serializers.JSONField(required=False, default=dict)
    expires_in_s = serializers.IntegerField(required=False, default=3600, min_value=10, max_value=7 * 86400)
    max_attempts = serializers.IntegerField(required=False, default=3, min_value=1, max_value=20)
    run_when_idle = serializers.BooleanField(required=False, default=False)


class SendCommandSerializer(CommandOptionsSerializer):
    retry_backoff_s = serializers.IntegerField(required=False, default=30, min_value=1, max_value=3600)


# A row id a 64-bit key can hold: past it SQLite cannot even compare (a 500).
ROW_ID = {"min_value": 1, "max_value": 2**63 - 1}


class BatchTargetSerializer(serializers.Serializer):
    model = serializers.CharField(required=False)
    location = serializers.IntegerField(required=False, **ROW_ID)
    merchant_id = serializers.IntegerField(required=False, **ROW_ID)
    status = serializers.CharField(required=False)


class CreateBatchSerializer(CommandOptionsSerializer):
    device_ids = serializers.ListField(
        child=serializers.IntegerField(**ROW_ID), required=False, max_length=50_000
    )
    filter = BatchTargetSerializer(required=False)

    def validate(self, attrs):
        if ("device_ids" in attrs) == ("filter" in attrs):
            raise serializers.ValidationError({"device_ids": [_("give either device_ids or filter")]})
        return attrs


class RemoteCommandSerializer(serializers.ModelSerializer):
    command_id = serializers.UUIDField(source="id", read_only=True)
    device_serial = serializers.CharField(source="device.serial", read_only=True)

    class Meta:
        model = RemoteCommand
        fields = [
            "command_id",
            "device_id",
            "device_serial",
            "batch_id",
            "type",
            "payload",
            "status",
            "run_when_idle",
            "attempt",
            "max_attempts",
            "retry_backoff_s",
            "expires_at",
            "created_at",
            "sent_at",
            "delivered_at",
            "finished_at",
            "delivery_channel",
            "result",
            "error",
        ]


class BatchJobSerializer(serializers.ModelSerializer):
    """The job creating a batch's commands: `progress` 0–100, `result_rows` the commands made once done."""

    class Meta:
        model = TaskJob
        fields = ["id", "status", "progress", "cancel_requested", "result_rows", "error"]


class CommandBatchSerializer(serializers.ModelSerializer):
    """`counts` grow while the job creates the commands; `machines` is how many it will make (null when
    the batch also reaches other merchants' machines); `job` is null for batches made before jobs."""

    created_by = serializers.CharField(source="created_by.email", read_only=True)
    machines = serializers.IntegerField(source="visible_machines", read_only=True, allow_null=True)
    job = BatchJobSerializer(read_only=True, allow_null=True)
    counts = serializers.SerializerMethodField()

    class Meta:
        model = CommandBatch
        fields = ["id", "type", "payload", "target", "created_by", "created_at", "machines", "job", "counts"]

    def get_counts(self, batch) -> dict[str, int]:
        counts = {status: getattr(batch, f"n_{status}", 0) for status in CommandStatus.values}
        counts["total"] = getattr(batch, "n_total", 0)
        return counts


class AlarmSerializer(serializers.ModelSerializer):
    device_serial = serializers.CharField(source="device.serial", read_only=True)
    bin_index = serializers.SerializerMethodField()

    class Meta:
        model = Alarm
        fields = [
            "id",
            "merchant_id",
            "device_id",
            "device_serial",
            "type",
            "severity",
            "bin_index",
            "message",
            "is_active",
            "count",
            *ALARM_LIFECYCLE_FIELDS,
        ]

    def get_bin_index(self, alarm) -> int | None:
        return None if alarm.bin_index < 0 else alarm.bin_index


class ClearAlarmSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)
