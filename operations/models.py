import uuid
from datetime import time

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.tenancy import TenantQuerySet


class TaskJobQuerySet(models.QuerySet):
    def for_user(self, user):
        """A job's output holds what its creator could see: only they (and platform staff) see it."""
        from accounts.tenancy import sees_all_merchants

        if sees_all_merchants(user):
            return self
        if not (user and user.is_authenticated):
            return self.none()
        return self.filter(created_by=user)


# What a job's page and the API show of its run, in this order.
TASK_JOB_RUN_FIELDS = [
    "created_by",
    "created_at",
    "started_at",
    "finished_at",
    "cancel_requested",
    "attempts",
    "beat_at",
    "result_rows",
    "error",
    "files_deleted_at",
]


class TaskJob(models.Model):
    """A long job (an export, a batch dispatch, a package build, a material import) with its progress,
    shown live."""

    class Kind(models.TextChoices):
        ORDERS_EXPORT = "orders_export", _("Orders export")
        COMMAND_BATCH = "command_batch", _("Command batch")
        PACKAGE_BUILD = "package_build", _("Recipe package build")
        MATERIAL_IMPORT = "material_import", _("Material import")
        ANALYTICS_EXPORT = "analytics_export", _("Analytics export")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELED = "canceled", _("Canceled")

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
    # The kinds that store files (`result_file`, and the storage names under FILE_PARAMS in `params`):
    # deleted JOB_FILES_KEEP_DAYS after the job finished (operations.services.job_files). A package
    # build stores none: its package's file is the package's, which machines download.
    KINDS_WITH_FILES = (Kind.ORDERS_EXPORT, Kind.ANALYTICS_EXPORT, Kind.MATERIAL_IMPORT)
    FILE_PARAMS = ("file", "report")

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
    attempts = models.PositiveSmallIntegerField(
        _("attempts"), default=0, help_text=_("How many times a worker has started this job.")
    )
    beat_at = models.DateTimeField(
        _("last sign of life"),
        null=True,
        blank=True,
        help_text=_(
            "When the worker running the job last reported; a silent job is given to another worker."
        ),
    )
    result_file = models.FileField(_("file"), upload_to="exports/", blank=True)
    result_rows = models.PositiveIntegerField(_("rows"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    files_deleted_at = models.DateTimeField(
        _("files deleted"),
        null=True,
        blank=True,
        help_text=_("When the files the job stored were deleted, JOB_FILES_KEEP_DAYS after it finished."),
    )

    objects = TaskJobQuerySet.as_manager()

    class Meta:
        verbose_name = _("background job")
        verbose_name_plural = _("background jobs")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_by", "-created_at"], name="taskjob_user_recent"),
            models.Index(fields=["status"], name="taskjob_status"),
            models.Index(fields=["status", "beat_at"], name="taskjob_status_beat"),
            models.Index(
                fields=["finished_at"], condition=Q(files_deleted_at=None), name="taskjob_files_kept"
            ),
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

    @property
    def stored_files(self) -> list[str]:
        """The storage names of the files this job stored or reads (a confirmed import reads its
        preview's upload)."""
        names = [self.result_file.name, *(self.params.get(key) for key in self.FILE_PARAMS)]
        return [name for name in names if name]


class CommandType(models.TextChoices):
    MAKE_PRODUCT = "make_product", _("Make a product")
    OPEN_DOOR = "open_door", _("Open the door")
    UPGRADE = "upgrade", _("Upgrade the recipe package")
    SYNC = "sync", _("Sync")
    SET_PARAMS = "set_params", _("Set parameters")
    RESTART = "restart", _("Restart")
    CLEAN = "clean", _("Clean")
    LOCK = "lock", _("Lock")
    UNLOCK = "unlock", _("Unlock")


class CommandStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    TIMED_OUT = "timed_out", _("Timed out")
    EXPIRED = "expired", _("Expired")
    CANCELED = "canceled", _("Canceled")


class CommandResult(models.TextChoices):
    """What a machine reports of a command (protocol: "Command results")."""

    ACCEPTED = "accepted", _("Accepted")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    REJECTED = "rejected", _("Rejected")
    BUSY = "busy", _("Busy")


UNFINISHED_COMMAND_STATUSES = (CommandStatus.PENDING, CommandStatus.SENT, CommandStatus.DELIVERED)
GAVE_UP_COMMAND_STATUSES = (CommandStatus.FAILED, CommandStatus.TIMED_OUT)
FINAL_COMMAND_STATUSES = (
    CommandStatus.SUCCEEDED,
    CommandStatus.FAILED,
    CommandStatus.TIMED_OUT,
    CommandStatus.EXPIRED,
    CommandStatus.CANCELED,
)


class CommandBatch(models.Model):
    """One command sent to many machines (chosen ones, or all matching a filter)."""

    merchant = models.ForeignKey(
        "accounts.Merchant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="command_batches",
        verbose_name=_("merchant"),
    )
    type = models.CharField(_("type"), max_length=16, choices=CommandType.choices)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    target = models.JSONField(
        _("target"),
        default=dict,
        blank=True,
        help_text=_("The chosen device ids or the filter that chose them."),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    machines = models.PositiveIntegerField(
        _("machines"), default=0, help_text=_("How many machines the batch was sent to.")
    )
    device_ids = models.JSONField(
        _("machine ids"),
        default=list,
        blank=True,
        help_text=_("The machines the target resolved to when the batch was made: one command each."),
    )
    job = models.OneToOneField(
        TaskJob,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="command_batch",
        verbose_name=_("job"),
        help_text=_("The background job that creates the batch's commands."),
    )

    class Meta:
        verbose_name = _("command batch")
        verbose_name_plural = _("command batches")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.get_type_display()} ×{self.pk}"


class RemoteCommandQuerySet(TenantQuerySet):
    merchant_path = "device__merchant"


class RemoteCommand(models.Model):
    """What the back office asks one machine to do, and every step of its life."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device = models.ForeignKey(
        "devices.Device", on_delete=models.CASCADE, related_name="commands", verbose_name=_("device")
    )
    batch = models.ForeignKey(
        CommandBatch,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="commands",
        verbose_name=_("batch"),
    )
    type = models.CharField(_("type"), max_length=16, choices=CommandType.choices)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=CommandStatus.choices, default=CommandStatus.PENDING
    )
    run_when_idle = models.BooleanField(
        _("run when idle"), default=False, help_text=_("Held until the machine reports that it is idle.")
    )
    attempt = models.PositiveSmallIntegerField(_("attempts"), default=0)
    max_attempts = models.PositiveSmallIntegerField(_("maximum attempts"), default=3)
    retry_backoff_s = models.PositiveIntegerField(_("retry backoff (s)"), default=30)
    lease_s = models.PositiveIntegerField(
        _("lease (s)"), default=60, help_text=_("How long a delivered command waits for a result.")
    )
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    lease_expires_at = models.DateTimeField(_("lease expires"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    delivery_channel = models.CharField(_("delivered by"), max_length=16, blank=True)
    reported_status = models.CharField(_("machine's last report"), max_length=16, blank=True)
    result = models.JSONField(_("result"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)

    objects = RemoteCommandQuerySet.as_manager()

    class Meta:
        verbose_name = _("remote command")
        verbose_name_plural = _("remote commands")
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["device", "next_attempt_at"],
                condition=Q(status="pending"),
                name="command_device_deliverable",
            ),
            models.Index(fields=["status", "lease_expires_at"], name="command_status_lease"),
            models.Index(fields=["batch", "status"], name="command_batch_status"),
            models.Index(fields=["device", "-created_at"], name="command_device_recent"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=CommandStatus.values), name="command_status_valid"),
            models.CheckConstraint(condition=Q(type__in=CommandType.values), name="command_type_valid"),
            models.CheckConstraint(condition=Q(max_attempts__gte=1), name="command_max_attempts_positive"),
            # A batch gives each machine one command, also when its job runs twice.
            models.UniqueConstraint(
                fields=["batch", "device"],
                condition=Q(batch__isnull=False),
                name="command_one_per_batch_device",
            ),
        ]

    def __str__(self):
        return f"{self.get_type_display()} → {self.device_id} ({self.get_status_display()})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINAL_COMMAND_STATUSES


class AlarmType(models.TextChoices):
    OFFLINE = "offline", _("Offline")
    MATERIAL_LOW = "material_low", _("Material low")
    MATERIAL_EMPTY = "material_empty", _("Material empty")
    TEMPERATURE_OUT_OF_RANGE = "temperature_out_of_range", _("Temperature out of range")
    COMMAND_FAILED = "command_failed", _("Command failed")
    UPGRADE_FAILED = "upgrade_failed", _("Upgrade failed")


class Severity(models.TextChoices):
    INFO = "info", _("Info")
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


NO_BIN = -1


class AlarmQuerySet(TenantQuerySet):
    merchant_path = "merchant"


# An alarm's lifecycle as its page and the API show it, in this order.
ALARM_LIFECYCLE_FIELDS = [
    "first_seen_at",
    "last_seen_at",
    "acknowledged_at",
    "acknowledged_by",
    "cleared_at",
    "cleared_by",
    "clear_reason",
    "notified_at",
]


class Alarm(models.Model):
    """One real problem: at most one active alarm per (device, type, bin), enforced by the database.
    A repeat bumps its count and last-seen time; it clears by hand or when the condition is gone."""

    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.CASCADE, related_name="alarms", verbose_name=_("merchant")
    )
    device = models.ForeignKey(
        "devices.Device", on_delete=models.CASCADE, related_name="alarms", verbose_name=_("device")
    )
    type = models.CharField(_("type"), max_length=32, choices=AlarmType.choices)
    severity = models.CharField(_("severity"), max_length=16, choices=Severity.choices)
    bin_index = models.SmallIntegerField(_("bin"), default=NO_BIN, help_text=_("-1 when no bin is concerned"))
    message = models.CharField(_("message"), max_length=255, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    count = models.PositiveIntegerField(_("occurrences"), default=1)
    first_seen_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )
    cleared_at = models.DateTimeField(_("cleared"), null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("cleared by"),
    )
    clear_reason = models.CharField(_("cleared because"), max_length=255, blank=True)
    notified_at = models.DateTimeField(_("notified"), null=True, blank=True)

    objects = AlarmQuerySet.as_manager()

    class Meta:
        verbose_name = _("alarm")
        verbose_name_plural = _("alarms")
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "type", "bin_index"],
                condition=Q(is_active=True),
                name="alarm_one_active_per_device_type_bin",
            ),
            models.CheckConstraint(condition=Q(type__in=AlarmType.values), name="alarm_type_valid"),
            models.CheckConstraint(condition=Q(severity__in=Severity.values), name="alarm_severity_valid"),
        ]
        indexes = [
            models.Index(fields=["merchant", "is_active", "-last_seen_at"], name="alarm_merchant_active"),
            models.Index(fields=["device", "is_active"], name="alarm_device_active"),
            models.Index(fields=["severity", "is_active"], name="alarm_severity_active"),
        ]

    def __str__(self):
        bin_part = f" #{self.bin_index}" if self.bin_index != NO_BIN else ""
        return f"{self.get_type_display()}{bin_part} · {self.device_id}"


class NotificationChannel(models.Model):
    """Where a merchant wants to hear about alarms: an e-mail address or a webhook URL."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("E-mail")
        WEBHOOK = "webhook", _("Webhook")

    merchant = models.ForeignKey(
        "accounts.Merchant",
        on_delete=models.CASCADE,
        related_name="notification_channels",
        verbose_name=_("merchant"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    target = models.CharField(_("address or URL"), max_length=500)
    min_severity = models.CharField(
        _("from severity"), max_length=16, choices=Severity.choices, default=Severity.WARNING
    )
    secret = models.CharField(
        _("signing secret"),
        max_length=64,
        blank=True,
        help_text=_("Webhooks carry an X-Coffeeshop-Signature HMAC-SHA256 of the body."),
    )
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=settings.LANGUAGES,
        default="en",
        help_text=_("The language of the e-mails sent to this address."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    objects = AlarmQuerySet.as_manager()

    class Meta:
        verbose_name = _("notification channel")
        verbose_name_plural = _("notification channels")
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=["email", "webhook"]), name="channel_kind_valid")
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.target}"


class MaintenanceWindowQuerySet(TenantQuerySet):
    merchant_path = "device__merchant"


class MaintenanceWindow(models.Model):
    """While it lasts, a machine's alarms are recorded but nobody is notified."""

    device = models.ForeignKey(
        "devices.Device",
        on_delete=models.CASCADE,
        related_name="maintenance_windows",
        verbose_name=_("device"),
    )
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        verbose_name = _("maintenance window")
        verbose_name_plural = _("maintenance windows")
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="maintenance_ends_after_start"
            )
        ]
        indexes = [models.Index(fields=["device", "ends_at"], name="maintenance_device_ends")]

    def __str__(self):
        return f"{self.device_id}: {self.starts_at:%Y-%m-%d %H:%M} – {self.ends_at:%Y-%m-%d %H:%M}"


class ReportSubscription(models.Model):
    """A merchant's summary e-mailed every day or week (operations.services.reports). Each subscription
    is its own django-celery-beat entry (a crontab in the merchant's time zone), kept in step on save."""

    class Frequency(models.TextChoices):
        DAILY = "daily", _("Every day, for the day before")
        WEEKLY = "weekly", _("Every week, for the week before")

    class Weekday(models.IntegerChoices):
        MONDAY = 1, _("Monday")
        TUESDAY = 2, _("Tuesday")
        WEDNESDAY = 3, _("Wednesday")
        THURSDAY = 4, _("Thursday")
        FRIDAY = 5, _("Friday")
        SATURDAY = 6, _("Saturday")
        SUNDAY = 0, _("Sunday")

    merchant = models.ForeignKey(
        "accounts.Merchant",
        on_delete=models.CASCADE,
        related_name="report_subscriptions",
        verbose_name=_("merchant"),
    )
    email = models.EmailField(_("e-mail"))
    frequency = models.CharField(
        _("frequency"), max_length=8, choices=Frequency.choices, default=Frequency.DAILY
    )
    send_at = models.TimeField(_("sent at"), default=time(8, 0), help_text=_("In the merchant's time zone."))
    weekday = models.PositiveSmallIntegerField(
        _("weekday"), choices=Weekday.choices, default=Weekday.MONDAY, help_text=_("For weekly summaries.")
    )
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default="en")
    is_active = models.BooleanField(_("active"), default=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="report_subscription",
        verbose_name=_("schedule"),
    )
    last_sent_at = models.DateTimeField(_("last sent"), null=True, blank=True)

    objects = AlarmQuerySet.as_manager()

    class Meta:
        verbose_name = _("report subscription")
        verbose_name_plural = _("report subscriptions")
        ordering = ["merchant__name", "email"]

    def __str__(self):
        return f"{self.email} · {self.get_frequency_display()}"
