"""Every write to a recipe and its versions reaches the audit trail with who made it, from where."""

import pytest

from accounts.models import Role
from recipes.models import Recipe, RecipeVersion
from tests.factories import LATTE_STEPS
from tests.operations.test_audit_coverage import STAFF_IP, as_role, assert_audited, by  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords", "materials")]


def test_a_recipe_and_its_versions_written_through_the_api_are_recorded(as_role, merchant):  # noqa: F811
    ops = as_role(Role.OPS)
    created = ops.post(
        "/api/v1/recipes", {"product_id": "latte", "name": "Latte", "price": "18.00"}, format="json"
    ).json()["data"]
    recipe = Recipe.objects.get(pk=created["id"])
    row = assert_audited("recipe.created", recipe, **by(ops))
    assert row.merchant_id == merchant.pk
    ops.patch(f"/api/v1/recipes/{recipe.pk}", {"price": "19.00"}, format="json")
    assert_audited("recipe.updated", recipe, **by(ops))
    ops.post(f"/api/v1/recipes/{recipe.pk}/retire")
    assert_audited("recipe.retired", recipe, **by(ops))
    ops.post(f"/api/v1/recipes/{recipe.pk}/unretire")
    assert_audited("recipe.unretired", recipe, **by(ops))

    draft = ops.post(
        f"/api/v1/recipes/{recipe.pk}/versions", {"definition": {"steps": LATTE_STEPS}}, format="json"
    ).json()["data"]
    version = RecipeVersion.objects.get(pk=draft["id"])
    assert assert_audited("recipe_version.created", version, **by(ops)).merchant_id == merchant.pk
    steps = [dict(LATTE_STEPS[0], amount=20), *LATTE_STEPS[1:]]
    ops.patch(f"/api/v1/recipe-versions/{version.pk}", {"definition": {"steps": steps}}, format="json")
    assert_audited("recipe_version.updated", version, **by(ops))
    ops.post(f"/api/v1/recipe-versions/{version.pk}/publish")
    assert_audited("recipe_version.published", version, **by(ops))
    clone = ops.post(
        f"/api/v1/recipes/{recipe.pk}/versions", {"clone_from": version.pk}, format="json"
    ).json()["data"]
    assert_audited(
        "recipe_version.cloned",
        RecipeVersion.objects.get(pk=clone["id"]),
        **by(ops),
        changes={"from_version": 1},
    )
