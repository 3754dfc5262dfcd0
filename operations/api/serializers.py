from rest_framework import serializers

from operations.models import TaskJob


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
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "cancel_requested",
            "result_rows",
            "error",
            "download_url",
        ]

    def get_download_url(self, job) -> str | None:
        return f"/api/v1/jobs/{job.pk}/download" if job.status == TaskJob.Status.SUCCEEDED else None
