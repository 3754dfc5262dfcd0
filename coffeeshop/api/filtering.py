"""List filters that say so when a parameter means nothing: `/alarms?status=actve` or a filter named
otherwise is a 400 naming the parameter and the known ones, never a silently unfiltered list. And
times that a database cannot hold are a 400 too."""

import datetime
import re

from django import forms
from django.core.exceptions import ValidationError as FormValidationError
from django.db import models
from django.utils.translation import gettext as _
from django_filters.fields import IsoDateTimeField
from django_filters.filters import IsoDateTimeFilter, NumberFilter
from django_filters.rest_framework import DjangoFilterBackend, FilterSet
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings

ALWAYS_KNOWN = {"page", "page_size", "format"}
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def known_parameters(view, filterset_class) -> set[str]:
    known = set(ALWAYS_KNOWN)
    if filterset_class is not None:
        known |= set(filterset_class.base_filters)
    if getattr(view, "search_fields", None):
        known.add(api_settings.SEARCH_PARAM)
    if getattr(view, "ordering_fields", None) or getattr(view, "ordering", None):
        known.add(api_settings.ORDERING_PARAM)
    return known


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, converted to UTC: PostgreSQL refuses an offset past ±15:59 (`+22:17`), and a
    time that leaves years 1-9999 once converted (`0001-01-01T00:00+05:00`) exists in neither
    database nor Python. Both are "Enter a valid date/time", not a 500."""

    def to_python(self, value):
        parsed = super().to_python(value)
        try:
            return parsed and parsed.astimezone(datetime.UTC)
        except OverflowError as error:
            raise FormValidationError(self.error_messages["invalid"], code="invalid") from error


class UtcDateTimeFilter(IsoDateTimeFilter):
    field_class = UtcDateTimeField


class IdFilter(NumberFilter):
    """A row id: an integer a 64-bit key can hold (SQLite cannot compare `-2.8e75` with one: a 500)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=-(2**63), max_value=2**63 - 1, **kwargs)


class UtcFilterSet(FilterSet):
    """The FilterSet of views that list their filters as `filterset_fields` (the audit trail)."""

    FILTER_DEFAULTS = {**FilterSet.FILTER_DEFAULTS, models.DateTimeField: {"filter_class": UtcDateTimeFilter}}


class StrictFilterBackend(DjangoFilterBackend):
    filterset_base = UtcFilterSet

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) in ("list", *getattr(view, "strictly_filtered_actions", ())):
            known = known_parameters(view, self.get_filterset_class(view, queryset))
            unknown = sorted(set(request.query_params) - known)
            if unknown:
                message = _("Unknown parameter. Known: %(known)s.") % {"known": ", ".join(sorted(known))}
                raise ValidationError({name: [message] for name in unknown})
            garbled = sorted(
                name
                for name, values in request.query_params.lists()
                if any(map(CONTROL_CHARACTER.search, values))
            )
            if garbled:
                raise ValidationError({name: [_("Control characters are not allowed.")] for name in garbled})
        return super().filter_queryset(request, queryset, view)
