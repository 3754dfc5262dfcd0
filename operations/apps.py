from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = _("Operations")

    def ready(self):
        from django.contrib.admin.models import LogEntry
        from django.db.models.signals import post_save

        from coffeeshop.audit import record_admin_entry

        post_save.connect(record_admin_entry, sender=LogEntry, dispatch_uid="audit-admin-log-entry")
