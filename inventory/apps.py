from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = _("Inventory")

    def ready(self):
        from devices.rules import use_threshold_source
        from inventory.selectors import default_low_threshold

        use_threshold_source(default_low_threshold)
