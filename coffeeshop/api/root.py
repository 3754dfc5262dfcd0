"""`/api/v1/`: the browsable API's front door, linking every staff endpoint; and the envelope's 404 for
any path under it that matches no route (a typo, an old client), whatever DEBUG says."""

from django.urls import NoReverseMatch, reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from coffeeshop.api.errors import page_not_found


class ApiRootView(APIView):
    """The staff endpoints (sign in through `auth/login/` to browse them), the docs and the health check."""

    permission_classes = [AllowAny]
    routers: list = []
    extra_names = ("me", "health", "docs", "schema")

    @extend_schema(exclude=True)  # a page of links, not an endpoint to call
    def get(self, request):
        links = {}
        for router in self.routers:
            for prefix, _viewset, basename in router.registry:
                try:
                    links[prefix] = reverse(f"{basename}-list")
                except NoReverseMatch:
                    continue
        for name in self.extra_names:
            links[name] = reverse(name)
        return Response({name: request.build_absolute_uri(url) for name, url in sorted(links.items())})


@csrf_exempt  # it changes nothing, and a machine's POST to a wrong path must read 404, not a CSRF 403
def no_such_endpoint(request, *args, **kwargs):
    return page_not_found(request)
