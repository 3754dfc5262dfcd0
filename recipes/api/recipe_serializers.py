"""Shapes in and out of the recipes API. Only shapes: whether a definition is good, and whether a
version may change, is `recipes.services.authoring`'s to say."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inventory.api.serializers import ID, validate_merchant_id
from recipes.models import Recipe, RecipeVersion

NOTES_MAX_LENGTH = 10_000


class VersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()


def _version_ref(recipe, kind: str) -> dict | None:
    version_id = getattr(recipe, f"{kind}_version_id", None)
    return (
        None
        if version_id is None
        else {"id": version_id, "number": getattr(recipe, f"{kind}_version_number")}
    )


class RecipeSerializer(serializers.ModelSerializer):
    """A recipe with its newest published version and its draft (each `{"id", "number"}` or null)."""

    merchant_id = serializers.IntegerField(read_only=True)
    merchant_name = serializers.CharField(source="merchant.name", read_only=True)
    retired = serializers.BooleanField(source="is_retired", read_only=True)
    published_version = serializers.SerializerMethodField()
    draft_version = serializers.SerializerMethodField()

    class Meta:
        model = Recipe
        fields = [
            "id",
            "merchant_id",
            "merchant_name",
            "product_id",
            "name",
            "category",
            "price",
            "retired",
            "retired_at",
            "published_version",
            "draft_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(VersionRefSerializer(allow_null=True))
    def get_published_version(self, recipe) -> dict | None:
        return _version_ref(recipe, "published")

    @extend_schema_field(VersionRefSerializer(allow_null=True))
    def get_draft_version(self, recipe) -> dict | None:
        return _version_ref(recipe, "draft")


class RecipeWriteSerializer(serializers.ModelSerializer):
    merchant_id = serializers.IntegerField(required=False, **ID)

    class Meta:
        model = Recipe
        fields = ["merchant_id", "product_id", "name", "category", "price"]
        validators = []  # (merchant, product_id) is the service's and the database's to enforce: a 409

    def validate_merchant_id(self, value):
        return validate_merchant_id(self.context["request"], value)


class RecipeVersionSerializer(serializers.ModelSerializer):
    recipe_id = serializers.IntegerField(read_only=True)
    product_id = serializers.CharField(source="recipe.product_id", read_only=True)
    recipe_name = serializers.CharField(source="recipe.name", read_only=True)
    merchant_id = serializers.IntegerField(source="recipe.merchant_id", read_only=True)
    cloned_from_id = serializers.IntegerField(read_only=True, allow_null=True)
    created_by = serializers.CharField(
        source="created_by.email", read_only=True, allow_null=True, default=None
    )
    published_by = serializers.CharField(
        source="published_by.email", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = RecipeVersion
        fields = [
            "id",
            "recipe_id",
            "product_id",
            "recipe_name",
            "merchant_id",
            "number",
            "status",
            "definition",
            "notes",
            "cloned_from_id",
            "created_by",
            "created_at",
            "published_by",
            "published_at",
        ]
        read_only_fields = fields


class VersionWriteSerializer(serializers.Serializer):
    """A draft's changes: its definition (recipes/schema/recipe-definition.schema.json) and notes."""

    definition = serializers.JSONField(required=False)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=NOTES_MAX_LENGTH)


class NewVersionSerializer(VersionWriteSerializer):
    """A new draft: a `definition`, or `clone_from` (the id of a version of the same recipe)."""

    clone_from = serializers.IntegerField(required=False, **ID)

    def validate(self, attrs):
        if ("definition" in attrs) == ("clone_from" in attrs):
            message = _("Give a definition, or clone_from: the version to copy; not both.")
            raise serializers.ValidationError({"clone_from" if attrs else "definition": [message]})
        return attrs


class VersionDiffSerializer(serializers.Serializer):
    version = VersionRefSerializer()
    previous = VersionRefSerializer(allow_null=True)
    diff = serializers.CharField(help_text=_("A unified diff of the indented JSON; empty when unchanged."))
