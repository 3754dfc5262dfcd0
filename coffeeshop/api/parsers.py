"""JSON in, bounded: at most `MAX_JSON_DEPTH` levels deep (protocol 1.1), checked before parsing, so a
body nested thousands deep is a 400 rather than a RecursionError in the parser."""

import json
import re

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


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


def loads(text: str):
    """`json.loads`, refusing NaN/Infinity and nesting deeper than MAX_JSON_DEPTH (TooDeep)."""
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise TooDeep(_("JSON nested deeper than %(limit)d levels.") % {"limit": MAX_JSON_DEPTH})
    return json.loads(text, parse_constant=_reject_constant)


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return loads(stream.read().decode(encoding))
        except TooDeep as error:
            raise ParseError(str(error)) from None
        except ValueError as error:
            raise ParseError(_("JSON parse error - %(error)s") % {"error": error}) from None
