"""Recipe packages in and out of the staff API. Shapes only: what a package may hold is decided by
`recipes.services.packages.start_package_build`."""

from rest_framework import serializers

from inventory.api.serializers import ID, validate_merchant_id
from operations.models import TaskJob
from recipes.models import RecipePackage, RecipeVersion


class PackageJobSerializer(serializers.ModelSerializer):
    """The job building the file: `progress` 0–100; `error` says why a failed build failed."""

    class Meta:
        model = TaskJob
        fields = ["id", "status", "progress", "cancel_requested", "error"]


class PackagedVersionSerializer(serializers.ModelSerializer):
    recipe_id = serializers.IntegerField(read_only=True)
    product_id = serializers.CharField(source="recipe.product_id", read_only=True)
    name = serializers.CharField(source="recipe.name", read_only=True)

    class Meta:
        model = RecipeVersion
        fields = ["id", "recipe_id", "product_id", "name", "number"]


class RecipePackageSerializer(serializers.ModelSerializer):
    """A package as lists show it. `sha256`, `size` and `download_url` are set once it is ready."""

    merchant_id = serializers.IntegerField(read_only=True)
    created_by = serializers.CharField(source="created_by.email", read_only=True, allow_null=True)
    recipes = serializers.IntegerField(source="recipe_count", read_only=True)
    job = PackageJobSerializer(read_only=True, allow_null=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = RecipePackage
        fields = [
            "id",
            "merchant_id",
            "version",
            "machine_models",
            "min_firmware",
            "status",
            "recipes",
            "sha256",
            "size",
            "job",
            "created_by",
            "created_at",
            "built_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, package) -> str | None:
        return f"/api/v1/packages/{package.pk}/download" if package.is_ready else None


class RecipePackageDetailSerializer(RecipePackageSerializer):
    """A package with the recipe versions it bundles, by product id."""

    recipe_versions = serializers.SerializerMethodField()

    class Meta(RecipePackageSerializer.Meta):
        fields = [*RecipePackageSerializer.Meta.fields, "notes", "recipe_versions"]
        read_only_fields = fields

    def get_recipe_versions(self, package) -> list[dict]:
        versions = sorted(package.recipe_versions.all(), key=lambda v: v.recipe.product_id)
        return PackagedVersionSerializer(versions, many=True).data


class CreatePackageSerializer(serializers.Serializer):
    """`merchant_id` is needed from platform staff and users of several merchants."""

    merchant_id = serializers.IntegerField(required=False, **ID)
    version = serializers.CharField(max_length=32, allow_blank=True)
    machine_models = serializers.ListField(child=serializers.CharField(max_length=64), max_length=50)
    min_firmware = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    recipe_versions = serializers.ListField(child=serializers.IntegerField(**ID), max_length=1000)
    notes = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def validate_merchant_id(self, value):
        return validate_merchant_id(self.context["request"], value)
