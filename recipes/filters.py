"""FilterSets of the recipes API."""

import django_filters

from coffeeshop.api.filtering import IdFilter
from recipes.models import Recipe, RecipeVersion


class RecipeFilter(django_filters.FilterSet):
    merchant_id = IdFilter(field_name="merchant_id")
    category = django_filters.CharFilter(field_name="category", lookup_expr="iexact")
    retired = django_filters.BooleanFilter(field_name="is_retired")

    class Meta:
        model = Recipe
        fields = ["merchant_id", "category", "retired"]


class RecipeVersionFilter(django_filters.FilterSet):
    merchant_id = IdFilter(field_name="recipe__merchant_id")
    recipe_id = IdFilter(field_name="recipe_id")
    status = django_filters.ChoiceFilter(choices=RecipeVersion.Status.choices)

    class Meta:
        model = RecipeVersion
        fields = ["merchant_id", "recipe_id", "status"]
