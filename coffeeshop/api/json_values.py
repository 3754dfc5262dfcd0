"""Free-form JSON (a command's parameters or product options, an order item's options, a command's
result) holds no NUL: PostgreSQL refuses it in text and jsonb, so it was a 500 on saving. DRF's
CharField refuses it; a DictField does not look inside. (Unpaired surrogates, the other text no
column holds, never get this far: the JSON parser refuses them.)"""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers


def _first_nul(value, path: tuple[str, ...]) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return path
        found = _first_nul(item, (*path, str(key)))
        if found is not None:
            return found
    return None


def holds_nul(value) -> bool:
    return _first_nul(value, ()) is not None


def no_nul(value) -> None:
    """A field validator: a ValidationError naming (dotted, below the field) the first value that
    holds NUL, or the object whose key does."""
    path = _first_nul(value, ())
    if path is None:
        return
    message = _("must not contain NUL characters")
    raise serializers.ValidationError({".".join(path): [message]} if path else [message])
