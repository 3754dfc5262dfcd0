from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TaskJobQuerySet(models.QuerySet):
    def for_user(self, user):
        """A job's output holds what its creator could see, so only its creator (and platform staff) see it."""
        from accounts.tenancy import sees_all_merchants

        if sees_all_merchants(user):
            return self
        if not (user and user.is_authenticated):
            return self.none()
        return self.filter(created_by=user)


class TaskJob(models.Model):
    """A long job (an export, a batch dispatch, a package build) with its progress, shown live."""

    class Kind(models.TextChoices):
        ORDERS_EXPORT = "orders_export", _("Orders export")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELED = "canceled", _("Canceled")

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    cancel_requested = models.BooleanField(_("cancel requested"), default=False)
    result_file = models.FileField(_("file"), upload_to="exports/", blank=True)
    result_rows = models.PositiveIntegerField(_("rows"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    objects = TaskJobQuerySet.as_manager()

    class Meta:
        verbose_name = _("background job")
        verbose_name_plural = _("background jobs")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_by", "-created_at"], name="taskjob_user_recent"),
            models.Index(fields=["status"], name="taskjob_status"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="taskjob_progress_range"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "succeeded", "failed", "canceled"]),
                name="taskjob_status_valid",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
