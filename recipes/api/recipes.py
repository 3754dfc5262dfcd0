"""The staff API of recipes and their versions: `/api/v1/recipes` (and the definition's JSON Schema at
`/api/v1/recipes/schema`), `/api/v1/recipe-versions`."""

from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.models import Capability
from inventory.selectors import merchant_to_write_for
from recipes import selectors
from recipes.api import recipe_serializers as serializers
from recipes.filters import RecipeFilter, RecipeVersionFilter
from recipes.services import authoring

NUMERIC_ID = r"[0-9]+"  # so that /recipes/schema is never read as a recipe's id


class RecipeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Each merchant's recipes, one per product id. No delete: orders and packages name their versions; a
    recipe is retired instead."""

    serializer_class = serializers.RecipeSerializer
    filterset_class = RecipeFilter
    search_fields = ["product_id", "name", "category"]
    ordering_fields = ["product_id", "name", "category", "price", "created_at", "updated_at"]
    write_capability = Capability.MANAGE_RECIPES
    lookup_value_regex = NUMERIC_ID

    def get_queryset(self):
        return selectors.recipes_for(self.request.user)

    def _written(self, request, partial=False) -> dict:
        changes = serializers.RecipeWriteSerializer(
            data=request.data, partial=partial, context={"request": request}
        )
        changes.is_valid(raise_exception=True)
        return dict(changes.validated_data)

    def _recipe_reply(self, recipe, status_code=status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=recipe.pk)  # with its versions' summary
        return Response(serializers.RecipeSerializer(fresh).data, status=status_code)

    @extend_schema(request=serializers.RecipeWriteSerializer, responses={201: serializers.RecipeSerializer})
    def create(self, request):
        values = self._written(request)
        merchant = merchant_to_write_for(request.user, values.pop("merchant_id", None))
        recipe = authoring.create_recipe(merchant=merchant, **values)
        return self._recipe_reply(recipe, status.HTTP_201_CREATED)

    @extend_schema(request=serializers.RecipeWriteSerializer, responses=serializers.RecipeSerializer)
    def partial_update(self, request, pk=None):
        recipe = self.get_object()
        values = self._written(request, partial=True)
        if "merchant_id" in values and values["merchant_id"] != recipe.merchant_id:
            raise ValidationError({"merchant_id": [_("A recipe cannot move to another merchant.")]})
        values.pop("merchant_id", None)
        return self._recipe_reply(authoring.update_recipe(recipe, **values))

    @extend_schema(request=None, responses=serializers.RecipeSerializer)
    @action(detail=True, methods=["post"])
    def retire(self, request, pk=None):
        """No longer sold: new packages leave it out. Its versions, orders and packages stay."""
        return self._recipe_reply(authoring.set_retired(self.get_object(), True))

    @extend_schema(request=None, responses=serializers.RecipeSerializer)
    @action(detail=True, methods=["post"])
    def unretire(self, request, pk=None):
        return self._recipe_reply(authoring.set_retired(self.get_object(), False))

    @extend_schema(
        methods=["GET"],
        parameters=[OpenApiParameter("status", str, enum=["draft", "published"])],
        responses=serializers.RecipeVersionSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        request=serializers.NewVersionSerializer,
        responses={201: serializers.RecipeVersionSerializer},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def versions(self, request, pk=None):
        """GET: the recipe's versions, newest first. POST: its next version, a draft, with a `definition`
        or copied from `clone_from`; a recipe with a draft already is a 409."""
        # Filtered here, not by the view's filter backends: those filter the recipes that `get_object`
        # looks the recipe up in.
        recipe = self.get_object()
        if request.method == "POST":
            return self._new_draft(request, recipe)
        versions = RecipeVersionFilter(
            request.query_params, selectors.versions_for(request.user).filter(recipe=recipe)
        )
        if not versions.is_valid():
            raise ValidationError(versions.errors)
        page = self.paginate_queryset(versions.qs)
        return self.get_paginated_response(serializers.RecipeVersionSerializer(page, many=True).data)

    def _new_draft(self, request, recipe) -> Response:
        form = serializers.NewVersionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = dict(form.validated_data)
        clone_from = None
        if "clone_from" in values:
            clone_from = selectors.versions_for(request.user).filter(pk=values.pop("clone_from")).first()
            if clone_from is None or clone_from.recipe_id != recipe.pk:
                raise ValidationError({"clone_from": [_("Not a version of this recipe.")]})
        draft = authoring.create_draft(recipe, clone_from=clone_from, user=request.user, **values)
        reply = serializers.RecipeVersionSerializer(selectors.versions_for(request.user).get(pk=draft.pk))
        return Response(reply.data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="recipes/schema/recipe-definition.schema.json as it is (JSON Schema 2020-12), "
                "not wrapped in the envelope, so that editors and validators read it directly.",
            )
        }
    )
    @action(detail=False, url_path="schema", pagination_class=None, filter_backends=[])
    def definition_schema(self, request):  # not `schema`: DRF's views keep their OpenAPI schema there
        """The JSON Schema every version's definition is checked against, byte for byte the file."""
        return HttpResponse(selectors.definition_schema_bytes(), content_type="application/json")


class RecipeVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Versions of every recipe the user sees. A draft changes (PATCH) until published; a published version
    never does (409): a change to it is a new draft, `POST /recipes/{id}/versions {"clone_from": id}`."""

    serializer_class = serializers.RecipeVersionSerializer
    filterset_class = RecipeVersionFilter
    search_fields = ["recipe__product_id", "recipe__name"]
    ordering_fields = ["number", "created_at", "published_at"]
    write_capability = Capability.MANAGE_RECIPES
    lookup_value_regex = NUMERIC_ID

    def get_queryset(self):
        return selectors.versions_for(self.request.user)

    def _version_reply(self, version) -> Response:
        return Response(serializers.RecipeVersionSerializer(self.get_queryset().get(pk=version.pk)).data)

    @extend_schema(request=serializers.VersionWriteSerializer, responses=serializers.RecipeVersionSerializer)
    def partial_update(self, request, pk=None):
        """A draft's definition or notes; a published version is a 409."""
        version = self.get_object()
        form = serializers.VersionWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return self._version_reply(authoring.update_draft(version, **form.validated_data))

    @extend_schema(request=None, responses=serializers.RecipeVersionSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        """Once the definition passes the schema and the catalogue as it is now; from then on it never
        changes. Publishing it again is a 409."""
        return self._version_reply(authoring.publish_version(self.get_object(), user=request.user))

    @extend_schema(responses=serializers.VersionDiffSerializer)
    @action(detail=True, filter_backends=[])
    def diff(self, request, pk=None):
        """Against the previous published version (none for the first: every line is added)."""
        version = self.get_object()
        previous, diff = selectors.definition_diff(version)
        ref = serializers.VersionRefSerializer
        return Response(
            {
                "version": ref(version).data,
                "previous": ref(previous).data if previous else None,
                "diff": diff,
            }
        )


ROUTES: list = [  # (prefix, viewset, basename)
    ("recipes", RecipeViewSet, "recipe"),
    ("recipe-versions", RecipeVersionViewSet, "recipe-version"),
]
