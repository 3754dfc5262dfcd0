from django.apps import AppConfig


class CoffeeshopConfig(AppConfig):
    name = "coffeeshop"
    verbose_name = "coffeeshop"

    def ready(self):
        from coffeeshop import checks, workers  # noqa: F401  (system checks; the workers' pulse)
        from coffeeshop.metrics import register_business_metrics

        register_business_metrics()
