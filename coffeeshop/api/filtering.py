"""List filters that say so when a parameter means nothing: `/alarms?status=actve` or a filter named
otherwise is a 400 naming the parameter and the known ones, never a silently unfiltered list."""

import re

from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
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


class StrictFilterBackend(DjangoFilterBackend):
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
