"""The site root sends people to the back office; browsers asking for /favicon.ico get the admin's icon."""

from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView


class FaviconView(RedirectView):
    permanent = True

    def get_redirect_url(self, *args, **kwargs):
        # At request time: a manifest storage names the file only once collectstatic has run.
        return static("coffeeshop/favicon.svg")


urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
]
