"""The one JSON dialect every reply speaks: {"ok": true, "data": ...} or {"ok": false, "error": {...}}.

Views return plain data; the renderer wraps it, and errors arrive already enveloped from
`coffeeshop.api.errors.exception_handler`, so no view ever builds an envelope by hand.
"""

from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer


def is_enveloped(data) -> bool:
    return isinstance(data, dict) and set(data) <= {"ok", "data", "error"} and "ok" in data


def envelope(data):
    return data if is_enveloped(data) else {"ok": True, "data": data}


class EnvelopeJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code == 204:
            return b""
        return super().render(envelope(data), accepted_media_type, renderer_context)


class EnvelopeBrowsableAPIRenderer(BrowsableAPIRenderer):
    def get_default_renderer(self, view):
        return EnvelopeJSONRenderer()
