"""The staff API of recipe packages: create (a build job), list, retrieve, build again, download."""

import django_filters
from django.db.models import Count
from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Capability
from coffeeshop.api.filtering import IdFilter
from inventory.selectors import merchant_to_write_for
from recipes.api import package_serializers as serializers
from recipes.models import RecipePackage
from recipes.services import packages
from recipes.tasks import build_package

# Building a package readies what machines will run, as rollouts will send it: the machine operators'.
PACKAGE_CAPABILITY = Capability.OPERATE_DEVICES


class PackageFilter(django_filters.FilterSet):
    merchant_id = IdFilter(field_name="merchant_id")
    status = django_filters.ChoiceFilter(choices=RecipePackage.Status.choices)

    class Meta:
        model = RecipePackage
        fields = ["merchant_id", "status"]


def package_response(package: RecipePackage, *, as_attachment: bool) -> HttpResponse:
    """A ready package's exact bytes, with their length and SHA-256 (also as the ETag)."""
    response = HttpResponse(packages.read_package_file(package), content_type="application/json")
    response["Content-Length"] = str(package.size)
    response["ETag"] = f'"{package.sha256}"'
    response["X-Content-SHA256"] = package.sha256
    if as_attachment:
        response["Content-Disposition"] = f'attachment; filename="package-{package.version}.json"'
    return response


class RecipePackageViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Published recipe versions bundled for some machine models, built in the background into one
    immutable file. No update and no delete: a ready package never changes."""

    filterset_class = PackageFilter
    search_fields = ["version"]
    ordering_fields = ["created_at", "built_at", "version"]
    write_capability = PACKAGE_CAPABILITY

    def get_queryset(self):
        if self.action == "download":  # the file only: reading its recipes cost 8x the download itself
            return packages.packages_for(self.request.user)
        queryset = packages.packages_for(self.request.user).annotate(recipe_count=Count("recipe_versions"))
        if self.action != "list":
            queryset = queryset.prefetch_related("recipe_versions__recipe")
        return queryset

    def get_serializer_class(self):
        if self.action == "list":
            return serializers.RecipePackageSerializer
        return serializers.RecipePackageDetailSerializer

    def _detail(self, package_id, status_code=status.HTTP_200_OK) -> Response:
        package = self.get_queryset().get(pk=package_id)
        return Response(serializers.RecipePackageDetailSerializer(package).data, status=status_code)

    @extend_schema(
        request=serializers.CreatePackageSerializer,
        responses={202: serializers.RecipePackageDetailSerializer},
        description=(
            "Check the package and queue the background job that builds its file. The reply is the "
            "package (status `building`) with its `job` (`progress` 0–100): follow it with "
            "`GET /packages/{id}` or `GET /jobs/{job.id}`. Once `ready`, `sha256`, `size` and "
            "`download_url` are set."
        ),
    )
    def create(self, request):
        form = serializers.CreatePackageSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        package = packages.start_package_build(
            merchant=merchant_to_write_for(request.user, data.pop("merchant_id", None)),
            recipe_version_ids=data.pop("recipe_versions"),
            user=request.user,
            enqueue=build_package.delay,
            **data,
        )
        return self._detail(package.pk, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: serializers.RecipePackageDetailSerializer})
    @action(detail=True, methods=["post"])
    def rebuild(self, request, pk=None):
        """A failed or canceled build, started over; a ready package (or one building) is a 409."""
        package = packages.build_package_again(
            self.get_object(), user=request.user, enqueue=build_package.delay
        )
        return self._detail(package.pk, status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.BINARY})
    @action(detail=True)
    def download(self, request, pk=None):
        """The package file, byte for byte as machines get it; 404 until it is ready."""
        package = self.get_object()
        if not package.is_ready:
            raise exceptions.NotFound(_("This package is not ready (yet)."))
        return package_response(package, as_attachment=True)


ROUTES: list = [("packages", RecipePackageViewSet, "package")]  # (prefix, viewset, basename)
