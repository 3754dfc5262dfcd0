"""FilterSets shared by the staff API and the export."""

import django_filters

from inventory.models import Material, MaterialKind, MaterialUnit


class MaterialFilter(django_filters.FilterSet):
    merchant_id = django_filters.NumberFilter(field_name="merchant_id")
    kind = django_filters.ChoiceFilter(choices=MaterialKind.choices)
    unit = django_filters.ChoiceFilter(choices=MaterialUnit.choices)
    enabled = django_filters.BooleanFilter(field_name="is_enabled")

    class Meta:
        model = Material
        fields = ["merchant_id", "kind", "unit", "enabled"]
