from django.apps import AppConfig


class CoffeeshopConfig(AppConfig):
    name = "coffeeshop"
    verbose_name = "coffeeshop"

    def ready(self):
        from coffeeshop import checks  # noqa: F401  (registers system checks)
