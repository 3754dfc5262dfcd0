from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = _("Sales")

    def ready(self):
        from orders import summary  # noqa: F401  (adds the machine's sales to its summary)
