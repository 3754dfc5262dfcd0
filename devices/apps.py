from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = _("Fleet")

    def ready(self):
        from coffeeshop.redis import on_recovery
        from devices import checks  # noqa: F401  (registers system checks)
        from devices.services.credentials import forget_cached_tokens
        from devices.services.heartbeat import forget_fingerprints

        on_recovery(forget_fingerprints)
        on_recovery(forget_cached_tokens)
