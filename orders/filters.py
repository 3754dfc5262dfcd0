"""FilterSets shared by the staff API and the admin. Dates filter on the server's receive time: machine
clocks drift (protocol: the server reports on its own time)."""

import django_filters
from django.utils.translation import gettext_lazy as _

from coffeeshop.api.filtering import IdFilter, UtcDateTimeFilter
from orders.models import Order, PaymentStatus


class OrderFilter(django_filters.FilterSet):
    from_ = UtcDateTimeFilter(
        field_name="received_at", lookup_expr="gte", help_text=_("received at or after (ISO 8601)")
    )
    to = UtcDateTimeFilter(
        field_name="received_at", lookup_expr="lt", help_text=_("received before (ISO 8601)")
    )
    device_id = IdFilter(field_name="device_id")
    merchant_id = IdFilter(field_name="merchant_id")
    location = IdFilter(field_name="location_id")
    payment_method = django_filters.CharFilter(field_name="payment_method")
    payment_status = django_filters.ChoiceFilter(field_name="payment_status", choices=PaymentStatus.choices)
    exception = django_filters.BooleanFilter(field_name="is_exception")
    is_test = django_filters.BooleanFilter(field_name="is_test")

    class Meta:
        model = Order
        fields = [
            "device_id",
            "merchant_id",
            "location",
            "payment_method",
            "payment_status",
            "exception",
            "is_test",
        ]


# `from` is a Python keyword, so the filter is declared as `from_` and published as `from`: the query
# parameter, the schema and a validation error all name what the client sends (`details.fields.from`).
OrderFilter.base_filters["from"] = OrderFilter.base_filters.pop("from_")
