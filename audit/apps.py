from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = _("Audit")

    def ready(self):
        from django.contrib.admin.models import LogEntry
        from django.db.models.signals import post_save

        from audit.services import record_admin_entry

        post_save.connect(record_admin_entry, sender=LogEntry, dispatch_uid="audit-admin-log-entry")
