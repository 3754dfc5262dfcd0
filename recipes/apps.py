from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecipesConfig(AppConfig):
    name = "recipes"
    verbose_name = _("Recipes")

    def ready(self):
        from coffeeshop.redis import on_recovery
        from recipes.services.rollouts import republish_offers

        on_recovery(republish_offers)
