"""The order list's filters, and how they translate into the export's (the staff API's) parameters."""

from datetime import datetime, timedelta

from django.contrib.admin.views.main import ALL_VAR, IS_FACETS_VAR, ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import DropdownFilter, RangeDateTimeFilter
from unfold.utils import parse_datetime_str

from orders.models import BUILT_IN_PAYMENT_METHODS, PaymentMethod

DATE_FIELD = "received_at"
# The changelist's own parameters that do not choose rows (ordering, page, facets).
NOT_A_FILTER = {ORDER_VAR, PAGE_VAR, ALL_VAR, IS_FACETS_VAR, "e"}
FILTER_PARAMS = {
    "merchant__id__exact": "merchant_id",
    "location__id__exact": "location",
    "device__id__exact": "device_id",
    "payment_method": "payment_method",
    "payment_status__exact": "payment_status",
    "is_exception__exact": "exception",
    "is_test__exact": "is_test",
}
BOOLEAN_PARAMS = {"exception", "is_test"}


class UnexportableFilter(ValueError):
    """The list is narrowed by something the export's filter cannot say (a search, an empty location)."""


def _period(params) -> dict[str, str]:
    """The date hierarchy's year/month/day as the export's from/to, in the admin's time zone (as Django
    computes it for the list)."""
    year, month, day = (params.get(f"{DATE_FIELD}__{part}") for part in ("year", "month", "day"))
    if not year:
        if month or day:
            raise UnexportableFilter(f"{DATE_FIELD}__month")
        return {}
    try:
        start = datetime(int(year), int(month or 1), int(day or 1))
    except ValueError as error:
        raise UnexportableFilter(DATE_FIELD) from error
    if day:
        end = start + timedelta(days=1)
    elif month:
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        end = start.replace(year=start.year + 1)
    zone = timezone.get_current_timezone()
    return {
        "from": timezone.make_aware(start, zone).isoformat(),
        "to": timezone.make_aware(end, zone).isoformat(),
    }


RANGE_PARAMS = {part: f"{DATE_FIELD}_{part}" for part in ("from_0", "from_1", "to_0", "to_1")}


def _range_end(query, end: str) -> datetime | None:
    """One end of the time-range filter (a date and a time, as typed) in the admin's time zone."""
    day, time = query.get(RANGE_PARAMS[f"{end}_0"], ""), query.get(RANGE_PARAMS[f"{end}_1"], "")
    if not day:
        return None
    moment = parse_datetime_str(f"{day} {time or '00:00'}")
    if moment is None:
        raise UnexportableFilter(RANGE_PARAMS[f"{end}_0"])
    return timezone.make_aware(moment, timezone.get_current_timezone())


def time_range(query) -> tuple[datetime | None, datetime | None]:
    """The time-range filter's [from, to): both in the zone the page is read in (the merchant's)."""
    return _range_end(query, "from"), _range_end(query, "to")


class ReceivedRangeFilter(RangeDateTimeFilter):
    """Orders received from one moment to another (the end excluded, as the API's `to`), typed in the
    time zone the page names rather than the server's."""

    def queryset(self, request, queryset):
        try:
            start, end = time_range(self.used_parameters)
        except UnexportableFilter:
            return queryset.none()
        if start is not None:
            queryset = queryset.filter(**{f"{DATE_FIELD}__gte": start})
        if end is not None:
            queryset = queryset.filter(**{f"{DATE_FIELD}__lt": end})
        return queryset


def export_params(query) -> dict[str, str]:
    """The OrderFilter parameters (the staff API's) that select the rows the changelist shows for `query`.

    Raises UnexportableFilter when the list is narrowed by something OrderFilter cannot express: the
    export would then hold other rows than the list, so it is refused rather than approximated.
    """
    date_params = {f"{DATE_FIELD}__{part}" for part in ("year", "month", "day")}
    params = _period(query)
    start, end = time_range(query)
    if (start or end) and params:
        raise UnexportableFilter(DATE_FIELD)  # a day of the hierarchy and a range: one from/to says neither
    if start is not None:
        params["from"] = start.isoformat()
    if end is not None:
        params["to"] = end.isoformat()
    for name, value in query.items():
        if name in NOT_A_FILTER or name in date_params or name in RANGE_PARAMS.values():
            continue
        if len(query.getlist(name)) > 1:
            raise UnexportableFilter(name)
        if name == SEARCH_VAR:
            if value.strip():
                raise UnexportableFilter(name)
            continue
        target = FILTER_PARAMS.get(name)
        if target is None:
            raise UnexportableFilter(name)
        if target in BOOLEAN_PARAMS:
            value = {"1": "true", "0": "false"}.get(value, value)
        params[target] = value
    return params


class PaymentMethodFilter(DropdownFilter):
    """The built-in payment methods and those of the user's merchants, by their names."""

    title = _("payment method")
    parameter_name = "payment_method"

    def lookups(self, request, model_admin):
        methods = dict(BUILT_IN_PAYMENT_METHODS)
        for code, name in PaymentMethod.objects.for_user(request.user).values_list("code", "name"):
            methods.setdefault(code, name)
        chosen = self.value()
        if chosen and chosen not in methods:
            methods[chosen] = chosen  # a filter without this choice would be silently dropped
        return sorted(methods.items(), key=lambda item: str(item[1]))

    def queryset(self, request, queryset):
        return queryset.filter(payment_method=self.value()) if self.value() else queryset
