"""Reads worth naming: a merchant's recipes and their versions, the definition's schema, a version's diff."""

import difflib
import json
from functools import cache
from pathlib import Path

from django.db.models import OuterRef, Subquery

from inventory.models import Material
from recipes.models import Recipe, RecipeVersion

DEFINITION_SCHEMA = Path(__file__).resolve().parent / "schema" / "recipe-definition.schema.json"


@cache
def definition_schema_bytes() -> bytes:
    """The schema file as kept in the repository: what `/api/v1/recipes/schema` serves, byte for byte."""
    return DEFINITION_SCHEMA.read_bytes()


@cache
def definition_schema() -> dict:
    return json.loads(definition_schema_bytes())


def _newest_version(status: str, field: str) -> Subquery:
    newest = RecipeVersion.objects.filter(recipe=OuterRef("pk"), status=status).order_by("-number")
    return Subquery(newest.values(field)[:1])


def with_version_summary(recipes):
    """Each recipe with its newest published version and its draft (ids and numbers), in the same query."""
    published, draft = RecipeVersion.Status.PUBLISHED, RecipeVersion.Status.DRAFT
    return recipes.annotate(
        published_version_id=_newest_version(published, "pk"),
        published_version_number=_newest_version(published, "number"),
        draft_version_id=_newest_version(draft, "pk"),
        draft_version_number=_newest_version(draft, "number"),
    )


def recipes_for(user):
    return with_version_summary(Recipe.objects.for_user(user).select_related("merchant")).order_by(
        "merchant_id", "product_id"
    )


def versions_for(user):
    return (
        RecipeVersion.objects.for_user(user)
        .select_related("recipe__merchant", "created_by", "published_by")
        .order_by("recipe_id", "-number")
    )


def material_states(merchant_id: int, codes) -> dict[str, bool]:
    """The codes among `codes` that the merchant's catalogue holds, each with whether it is enabled.
    Read from the database, not the machines' minute-long memo: a recipe is authored rarely, and one
    published a moment after its material was disabled would brew with nothing."""
    wanted = {code for code in codes if "\x00" not in code}  # no column holds NUL: unknown anyway
    if not wanted:
        return {}
    return dict(
        Material.objects.filter(merchant_id=merchant_id, code__in=wanted).values_list("code", "is_enabled")
    )


def previous_published(version: RecipeVersion) -> RecipeVersion | None:
    """The published version this one follows: the newest published one numbered before it."""
    return (
        RecipeVersion.objects.filter(
            recipe_id=version.recipe_id, status=RecipeVersion.Status.PUBLISHED, number__lt=version.number
        )
        .order_by("-number")
        .first()
    )


def pretty_definition(definition) -> str:
    """A definition as people compare it: indented, keys sorted (steps keep their order)."""
    return json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def definition_diff(version: RecipeVersion) -> tuple[RecipeVersion | None, str]:
    """The version against the previous published one, as a unified diff of `pretty_definition`; the
    first version is compared with nothing (every line added). An unchanged definition diffs to ""."""
    previous = previous_published(version)
    before = pretty_definition(previous.definition).splitlines(keepends=True) if previous else []
    after = pretty_definition(version.definition).splitlines(keepends=True)
    lines = difflib.unified_diff(
        before,
        after,
        fromfile=f"v{previous.number}" if previous else "(none)",
        tofile=f"v{version.number}",
    )
    return previous, "".join(lines)
