"""FilterSets shared by the staff API and the export."""

import django_filters

from coffeeshop.api.filtering import IdFilter, UtcDateTimeFilter
from inventory.models import BIN_STATES, Bin, Material, MaterialKind, MaterialUnit, Refill, RefillSource


class MaterialFilter(django_filters.FilterSet):
    merchant_id = django_filters.NumberFilter(field_name="merchant_id")
    kind = django_filters.ChoiceFilter(choices=MaterialKind.choices)
    unit = django_filters.ChoiceFilter(choices=MaterialUnit.choices)
    enabled = django_filters.BooleanFilter(field_name="is_enabled")

    class Meta:
        model = Material
        fields = ["merchant_id", "kind", "unit", "enabled"]


class BinFilter(django_filters.FilterSet):
    """The fleet bin page's filters; `state` is the selectors' annotation (ok, low, empty)."""

    merchant_id = IdFilter(field_name="device__merchant_id")
    location_id = IdFilter(field_name="device__location_id")
    device_id = IdFilter(field_name="device_id")
    material = django_filters.CharFilter(field_name="material_code")
    state = django_filters.ChoiceFilter(choices=[(state, state) for state in BIN_STATES], field_name="state")
    variance_flagged = django_filters.BooleanFilter(field_name="is_variance_flagged")

    class Meta:
        model = Bin
        fields = ["merchant_id", "location_id", "device_id", "material", "state", "variance_flagged"]


class RefillFilter(django_filters.FilterSet):
    merchant_id = IdFilter(field_name="device__merchant_id")
    device_id = IdFilter(field_name="device_id")
    bin_id = IdFilter(field_name="bin_id")
    material = django_filters.CharFilter(field_name="material_code")
    source = django_filters.ChoiceFilter(choices=RefillSource.choices)
    since = UtcDateTimeFilter(field_name="refilled_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="refilled_at", lookup_expr="lt")

    class Meta:
        model = Refill
        fields = ["merchant_id", "device_id", "bin_id", "material", "source"]
