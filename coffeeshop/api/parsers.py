"""JSON in, bounded: at most `MAX_JSON_DEPTH` levels deep (protocol 1.1), checked before parsing, so a
body nested thousands deep is a 400 rather than a RecursionError in the parser. And text only: a
`\\ud800` escape with no partner is no character, so it could be neither stored nor echoed back in
an error (a 500 when a choice field said '"\\ud800" is not a valid choice')."""

import json
import re

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class TooDeep(ValueError):
    pass


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in `text` (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def has_unpaired_surrogate(value) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(has_unpaired_surrogate(k) or has_unpaired_surrogate(v) for k, v in value.items())
    return isinstance(value, list) and any(map(has_unpaired_surrogate, value))


def loads(text: str):
    """`json.loads`, refusing NaN/Infinity, unpaired surrogates and nesting deeper than
    MAX_JSON_DEPTH (TooDeep)."""
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise TooDeep(_("JSON nested deeper than %(limit)d levels.") % {"limit": MAX_JSON_DEPTH})
    value = json.loads(text, parse_constant=_reject_constant)
    # A pair (an emoji) decodes to one character; only an escape left alone remains a surrogate.
    if _SURROGATE_ESCAPE.search(text) and has_unpaired_surrogate(value):
        raise ValueError(_("a \\u escape names an unpaired surrogate, which is no character"))
    return value


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return loads(stream.read().decode(encoding))
        except TooDeep as error:
            raise ParseError(str(error)) from None
        except ValueError as error:
            raise ParseError(_("JSON parse error - %(error)s") % {"error": error}) from None
