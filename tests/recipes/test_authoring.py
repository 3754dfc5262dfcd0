"""Authoring recipes: a definition is checked against the schema and the catalogue, its errors named by
JSON pointer; a draft changes until it is published, a published version never does; a recipe has one
draft at a time, cloned or written from scratch; recipes retire and come back."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from jsonschema import Draft202012Validator

from audit.models import OperationLog
from coffeeshop.exceptions import Conflict, Invalid
from inventory.services import set_enabled
from recipes import selectors
from recipes.models import Recipe, RecipeVersion
from recipes.services import authoring
from tests.factories import MaterialFactory, RecipeFactory, RecipeVersionFactory

pytestmark = pytest.mark.django_db


def steps_with(latte_steps, index, **changes):
    steps = latte_steps()
    steps[index].update(changes)
    return {"steps": steps}


def refusal(call) -> dict[str, list[str]]:
    with pytest.raises(Invalid) as refused:
        call()
    return refused.value.details["fields"]


# --- The definition ------------------------------------------------------------------------------------


def test_the_schema_file_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(selectors.definition_schema())


def test_the_protocols_latte_is_a_good_definition(latte, latte_steps):
    assert authoring.definition_errors(latte.merchant_id, {"steps": latte_steps()}) == {}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"amount": 0}, {"/steps/0/amount": ["must be more than 0"]}),
        ({"amount": "18"}, {"/steps/0/amount": ["must be a number"]}),
        ({"amount": True}, {"/steps/0/amount": ["must be a number"]}),
        ({"amount": 10_001}, {"/steps/0/amount": ["must be at most 10000"]}),
        ({"unit": "kg"}, {"/steps/0/unit": ["must be one of g, ml, pcs"]}),
        ({"action": "boil"}, {"/steps/0/action": ["must be one of grind, brew, add, pour"]}),
        ({"water_ml": 30}, {"/steps/0/water_ml": ["is not a field of a grind step"]}),
        ({"material": ""}, {"/steps/0/material": ["must not be empty"]}),
    ],
)
def test_a_bad_step_is_named_by_its_json_pointer(latte, latte_steps, change, errors):
    assert authoring.definition_errors(latte.merchant_id, steps_with(latte_steps, 0, **change)) == errors


@pytest.mark.parametrize(
    ("definition", "errors"),
    [
        ({}, {"/steps": ["is required"]}),
        ([], {"": ["must be an object"]}),
        ({"steps": []}, {"/steps": ["must hold at least 1 item"]}),
        ({"steps": [{"action": "pour"}]}, {"/steps/0/water_ml": ["is required"]}),
        ({"steps": [{"water_ml": 10}]}, {"/steps/0/action": ["is required"]}),
        ({"steps": ["grind"]}, {"/steps/0": ["must be an object"]}),
        (
            {"steps": [{"action": "brew", "water_ml": 40, "temperature_c": 120}], "size": "large"},
            {
                "/size": ["is not a field of a recipe definition"],
                "/steps/0/temperature_c": ["must be at most 100"],
            },
        ),
        (
            {"steps": [{"action": "pour", "water_ml": float("nan")}]},
            {"/steps/0/water_ml": ["must be a finite number"]},
        ),
    ],
)
def test_a_bad_definition_is_named_by_its_json_pointers(latte, definition, errors):
    assert authoring.definition_errors(latte.merchant_id, definition) == errors


def test_every_error_is_reported_at_once_in_the_definitions_order(latte, latte_steps):
    steps = latte_steps()
    steps[3]["water_ml"] = -1
    steps[0]["material"] = "NO-SUCH-BEAN"
    steps[1]["temperature_c"] = 20

    errors = authoring.definition_errors(latte.merchant_id, {"steps": steps})

    assert list(errors) == ["/steps/0/material", "/steps/1/temperature_c", "/steps/3/water_ml"]


def test_a_material_the_catalogue_lacks_is_named_by_its_steps_pointer(latte, latte_steps, other_merchant):
    MaterialFactory(merchant=other_merchant, code="RIVAL-BEAN")
    set_enabled(latte.merchant.materials.get(code="MILK-POWDER"), False)
    steps = latte_steps()
    steps[0]["material"] = "RIVAL-BEAN"  # another merchant's
    steps.append({"action": "add", "material": "CINNAMON", "amount": 1, "unit": "g"})  # nobody's

    errors = authoring.definition_errors(latte.merchant_id, {"steps": steps})

    assert errors == {
        "/steps/0/material": ["RIVAL-BEAN is not in the merchant's catalogue"],
        "/steps/2/material": ["MILK-POWDER is disabled in the catalogue"],
        "/steps/4/material": ["CINNAMON is not in the merchant's catalogue"],
    }


def test_a_refused_definition_names_definition_and_the_pointer_and_creates_nothing(latte, latte_steps):
    fields = refusal(lambda: authoring.create_draft(latte, definition=steps_with(latte_steps, 2, amount=-5)))

    assert fields == {"definition/steps/2/amount": ["must be more than 0"]}
    assert not RecipeVersion.objects.exists()


# --- Drafts and publishing -------------------------------------------------------------------------------


def test_a_draft_is_written_changed_and_published_and_each_step_is_audited(latte, latte_steps, make_user):
    author = make_user()
    draft = authoring.create_draft(latte, definition={"steps": latte_steps()}, notes="first", user=author)
    authoring.update_draft(draft, definition=steps_with(latte_steps, 0, amount=20), notes="stronger")
    published = authoring.publish_version(draft, user=author)

    stored = RecipeVersion.objects.get(pk=draft.pk)
    assert (stored.number, stored.status, stored.notes) == (1, "published", "stronger")
    assert stored.definition["steps"][0]["amount"] == 20
    assert (stored.created_by, stored.published_by) == (author, author) and stored.published_at
    assert published.is_published
    log = OperationLog.objects.filter(target_type="recipes.recipeversion", target_id=str(draft.pk))
    assert list(log.order_by("pk").values_list("action", "merchant_id")) == [
        ("recipe_version.created", latte.merchant_id),
        ("recipe_version.updated", latte.merchant_id),
        ("recipe_version.published", latte.merchant_id),
    ]
    assert '"amount": 20' in log.get(action="recipe_version.updated").changes["definition"][1]


def test_a_published_version_is_never_changed_by_the_service(latte, latte_steps):
    version = RecipeVersionFactory(recipe=latte, status="published")

    with pytest.raises(Conflict):
        authoring.update_draft(version, definition=steps_with(latte_steps, 0, amount=99))
    with pytest.raises(Conflict):
        authoring.update_draft(version, notes="edited")
    with pytest.raises(Conflict):
        authoring.publish_version(version)

    version.refresh_from_db()
    assert version.definition["steps"][0]["amount"] == 18 and version.notes == ""


def test_a_published_version_cannot_be_saved_through_the_orm_either(latte):
    RecipeVersionFactory(recipe=latte, status="published")
    version = RecipeVersion.objects.get()
    version.definition = {"steps": [{"action": "pour", "water_ml": 1}]}

    with pytest.raises(Conflict):
        version.save()

    assert RecipeVersion.objects.get().definition["steps"][0]["action"] == "grind"
    draft = RecipeVersionFactory(recipe=latte)
    draft.notes = "a draft saves as before"
    draft.save()
    assert RecipeVersion.objects.get(pk=draft.pk).notes == "a draft saves as before"


def test_publishing_checks_the_catalogue_as_it_is_now(latte, latte_steps):
    draft = authoring.create_draft(latte, definition={"steps": latte_steps()})
    set_enabled(latte.merchant.materials.get(code="BEAN-ARABICA"), False)

    fields = refusal(lambda: authoring.publish_version(draft))

    assert fields == {"definition/steps/0/material": ["BEAN-ARABICA is disabled in the catalogue"]}
    assert RecipeVersion.objects.get(pk=draft.pk).status == "draft"


def test_a_recipe_has_one_draft_at_a_time(latte, latte_steps):
    first = authoring.create_draft(latte, definition={"steps": latte_steps()})

    with pytest.raises(Conflict) as refused:
        authoring.create_draft(latte, definition={"steps": latte_steps()})
    assert refused.value.details == {"draft_version_id": first.pk}
    assert latte.versions.count() == 1

    authoring.publish_version(first)
    second = authoring.create_draft(latte, definition={"steps": latte_steps()})
    assert (second.number, second.status) == (2, "draft")


def test_a_clone_is_a_new_draft_copying_the_version(latte, latte_steps, make_user):
    v1 = authoring.publish_version(authoring.create_draft(latte, definition={"steps": latte_steps()}))

    draft = authoring.create_draft(latte, clone_from=v1, notes="less milk", user=make_user())
    authoring.update_draft(draft, definition=steps_with(latte_steps, 2, amount=8))

    draft.refresh_from_db()
    assert (draft.number, draft.status, draft.cloned_from, draft.notes) == (2, "draft", v1, "less milk")
    assert draft.definition["steps"][2]["amount"] == 8
    assert RecipeVersion.objects.get(pk=v1.pk).definition["steps"][2]["amount"] == 12
    cloned = OperationLog.objects.get(action="recipe_version.cloned")
    assert (cloned.target_id, cloned.changes) == (str(draft.pk), {"from_version": 1})


def test_a_version_with_a_material_disabled_since_is_cloned_as_it_is_and_fixed_in_the_draft(
    latte, latte_steps
):
    v1 = authoring.publish_version(authoring.create_draft(latte, definition={"steps": latte_steps()}))
    set_enabled(latte.merchant.materials.get(code="MILK-POWDER"), False)
    MaterialFactory(merchant=latte.merchant, code="OAT-POWDER")

    draft = authoring.create_draft(latte, clone_from=v1)
    assert refusal(lambda: authoring.publish_version(draft)) == {
        "definition/steps/2/material": ["MILK-POWDER is disabled in the catalogue"]
    }
    authoring.update_draft(draft, definition=steps_with(latte_steps, 2, material="OAT-POWDER"))

    assert authoring.publish_version(draft).is_published


def test_a_version_of_another_recipe_is_not_cloned(latte, latte_steps, merchant):
    mocha = RecipeFactory(merchant=merchant, product_id="mocha")
    theirs = RecipeVersionFactory(recipe=mocha, status="published")

    assert list(refusal(lambda: authoring.create_draft(latte, clone_from=theirs))) == ["clone_from"]
    assert not latte.versions.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_drafts_started_at_once_leave_one_draft(latte, latte_steps):
    if connection.vendor != "postgresql":
        pytest.skip(reason="row-level concurrency is only meaningful on PostgreSQL")
    barrier = threading.Barrier(6)

    def start_a_draft(_n) -> str:
        try:
            barrier.wait()
            authoring.create_draft(latte, definition={"steps": latte_steps()})
            return "created"
        except Conflict:
            return "conflict"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(start_a_draft, range(6)))

    assert sorted(outcomes) == ["conflict"] * 5 + ["created"]
    assert list(latte.versions.values_list("number", "status")) == [(1, "draft")]


# --- Recipes ---------------------------------------------------------------------------------------------


def test_a_recipe_is_created_and_changed_but_its_product_id_never(merchant):
    latte = authoring.create_recipe(merchant=merchant, product_id="latte", name="Latte", price="18.00")
    authoring.update_recipe(latte, name="拿铁 Latte", price="19.50", product_id="latte")

    fields = refusal(lambda: authoring.update_recipe(latte, product_id="caffe-latte"))

    stored = Recipe.objects.get()
    assert (stored.product_id, stored.name, str(stored.price)) == ("latte", "拿铁 Latte", "19.50")
    assert list(fields) == ["product_id"]
    updated = OperationLog.objects.get(action="recipe.updated")
    assert updated.changes == {"name": ["Latte", "拿铁 Latte"], "price": ["18.00", "19.50"]}


def test_a_product_id_is_one_recipe_per_merchant(merchant, other_merchant):
    authoring.create_recipe(merchant=merchant, product_id="latte", name="Latte", price="18.00")

    with pytest.raises(Conflict) as refused:
        authoring.create_recipe(merchant=merchant, product_id="latte", name="Another", price="1.00")

    assert list(refused.value.details["fields"]) == ["product_id"]
    authoring.create_recipe(merchant=other_merchant, product_id="latte", name="Their latte", price="20.00")
    assert Recipe.objects.count() == 2


def test_a_negative_price_is_refused_naming_it(merchant):
    fields = refusal(lambda: authoring.create_recipe(merchant=merchant, product_id="x", name="X", price="-1"))

    assert list(fields) == ["price"]
    assert not Recipe.objects.exists()


def test_a_recipe_retires_and_comes_back_and_its_versions_stay(latte):
    RecipeVersionFactory(recipe=latte, status="published")

    retired = authoring.set_retired(latte, True)
    assert retired.is_retired and retired.retired_at is not None
    authoring.set_retired(latte, True)  # again: nothing new

    back = authoring.set_retired(latte, False)
    assert not back.is_retired and back.retired_at is None
    assert latte.versions.count() == 1
    assert list(
        OperationLog.objects.filter(target_type="recipes.recipe")
        .order_by("pk")
        .values_list("action", flat=True)
    ) == ["recipe.retired", "recipe.unretired"]


# --- The diff --------------------------------------------------------------------------------------------


def test_a_version_diffs_against_the_previous_published_one(latte, latte_steps):
    RecipeVersionFactory(recipe=latte, status="published")
    stronger = steps_with(latte_steps, 0, amount=20)
    RecipeVersionFactory(recipe=latte, status="published", definition=stronger)
    stronger["steps"][3]["water_ml"] = 200
    v3 = RecipeVersionFactory(recipe=latte, definition=stronger)

    previous, diff = selectors.definition_diff(v3)

    assert previous.number == 2
    assert diff.splitlines()[:2] == ["--- v2", "+++ v3"]
    assert [line for line in diff.splitlines()[2:] if line[:1] in "+-"] == [
        '-      "water_ml": 180',
        '+      "water_ml": 200',
    ]


def test_the_first_version_diffs_against_nothing(latte):
    previous, diff = selectors.definition_diff(RecipeVersionFactory(recipe=latte, status="published"))

    lines = diff.splitlines()
    assert previous is None and lines[:2] == ["--- (none)", "+++ v1"]
    assert '+      "material": "BEAN-ARABICA",' in lines
    assert all(line.startswith(("+", "@@")) for line in lines[2:])
