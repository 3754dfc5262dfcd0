"""The OpenAPI schema and its Swagger UI: open in development, for signed-in staff in production.

Refused, the schema (read by scripts) answers the envelope's 401/403 in JSON whatever format was asked;
the docs page (read by a person) sends them to the admin's login and back, as the admin's own pages do.
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import exceptions

from coffeeshop.api.envelope import EnvelopeJSONRenderer
from coffeeshop.api.permissions import IsStaffMember

REFUSED = (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, exceptions.PermissionDenied)


class DocsReaders(IsStaffMember):
    """Anyone while API_DOCS_PUBLIC (development's default), else staff who may read."""

    def has_permission(self, request, view):
        return settings.API_DOCS_PUBLIC or super().has_permission(request, view)


class SchemaView(SpectacularAPIView):
    permission_classes = [DocsReaders]

    def handle_exception(self, exc):
        if isinstance(exc, REFUSED):
            self.request.accepted_renderer = EnvelopeJSONRenderer()
            self.request.accepted_media_type = EnvelopeJSONRenderer.media_type
        return super().handle_exception(exc)


class DocsView(SpectacularSwaggerSplitView):
    """The page and its script are two requests, so the script needs no 'unsafe-inline' (CSP)."""

    permission_classes = [DocsReaders]

    def handle_exception(self, exc):
        if isinstance(exc, REFUSED):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
