from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.tenancy import TenantQuerySet


class OperationLogQuerySet(TenantQuerySet):
    merchant_path = "merchant"


class OperationLog(models.Model):
    """Who did what: every change made through the admin, the API and the machines."""

    class Source(models.TextChoices):
        ADMIN = "admin", _("Admin")
        API = "api", _("API")
        MACHINE = "machine", _("Machine")
        SYSTEM = "system", _("System")

    created_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    merchant = models.ForeignKey(
        "accounts.Merchant",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("merchant"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("who"),
    )
    device = models.ForeignKey(
        "devices.Device",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("machine"),
    )
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    action = models.CharField(_("action"), max_length=64)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_repr = models.CharField(_("target"), max_length=200, blank=True)
    changes = models.JSONField(_("what changed"), default=dict, blank=True)

    objects = OperationLogQuerySet.as_manager()

    class Meta:
        verbose_name = _("operation log entry")
        verbose_name_plural = _("operation log")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["merchant", "-created_at"], name="oplog_merchant_recent"),
            models.Index(fields=["target_type", "target_id"], name="oplog_target"),
            models.Index(fields=["action", "-created_at"], name="oplog_action_recent"),
            # The admin opens on people's lines, which older logs hold few of among machines' lines.
            models.Index(fields=["source", "-created_at"], name="oplog_source_recent"),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.target_repr}"
