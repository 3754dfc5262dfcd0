from django.apps import AppConfig


class CoffeeshopConfig(AppConfig):
    name = "coffeeshop"
    verbose_name = "coffeeshop"

    def ready(self):
        # System checks; the workers' pulse; what each process counts of its own (Celery tasks).
        from coffeeshop import checks, process_metrics, workers  # noqa: F401
        from coffeeshop.metrics import register_business_metrics

        register_business_metrics()
