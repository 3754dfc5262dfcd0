from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = _("Operations")

    def ready(self):
        from coffeeshop.redis import on_recovery
        from operations import summary  # noqa: F401  (adds alarms and commands to a machine's summary)
        from operations.services.notifications import queue_unsent_notifications
        from operations.services.pending_flags import reflag_pending_commands

        on_recovery(reflag_pending_commands)
        on_recovery(queue_unsent_notifications)
