from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = _("Fleet")

    def ready(self):
        from devices import checks  # noqa: F401  (registers system checks)
