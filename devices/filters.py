"""FilterSets shared by the staff API and the admin."""

import django_filters
from django.utils.translation import gettext_lazy as _

from coffeeshop.api.filtering import IdFilter, UtcDateTimeFilter
from devices.models import Device, DeviceState, DeviceStatusHistory, Location

ONLINE, OFFLINE = "online", "offline"
STATUS_CHOICES = [(ONLINE, _("Online")), (OFFLINE, _("Offline")), *DeviceState.choices]


class DeviceFilter(django_filters.FilterSet):
    merchant_id = IdFilter(field_name="merchant_id")
    location = IdFilter(field_name="location_id")
    model = django_filters.CharFilter(field_name="model")
    status = django_filters.ChoiceFilter(
        choices=STATUS_CHOICES, method="filter_status", help_text=_("online, offline, or a machine state")
    )

    class Meta:
        model = Device
        fields = ["merchant_id", "location", "model", "status"]

    def filter_status(self, queryset, name, value):
        if value == ONLINE:
            return queryset.filter(is_online=True)
        if value == OFFLINE:
            return queryset.filter(is_online=False)
        return queryset.filter(state=value)


class LocationFilter(django_filters.FilterSet):
    merchant_id = IdFilter(field_name="merchant_id")
    city = django_filters.CharFilter(field_name="city", lookup_expr="iexact")

    class Meta:
        model = Location
        fields = ["merchant_id", "city"]


class StatusHistoryFilter(django_filters.FilterSet):
    to = UtcDateTimeFilter(field_name="recorded_at", lookup_expr="lt")
    event = django_filters.CharFilter(field_name="event")
    ordering = django_filters.OrderingFilter(fields=["recorded_at"])

    class Meta:
        model = DeviceStatusHistory
        fields = ["event"]


# `from` is a Python keyword: added by name, so the query parameter and its errors are called `from`.
StatusHistoryFilter.base_filters["from"] = UtcDateTimeFilter(field_name="recorded_at", lookup_expr="gte")
