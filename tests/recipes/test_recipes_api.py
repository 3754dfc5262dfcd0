"""/api/v1/recipes and /api/v1/recipe-versions: read by every role, authored by Ops and Admins, each
merchant's own; a published version answers 409 to any change; the definition's schema is served."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from recipes.models import Recipe, RecipeVersion
from recipes.selectors import DEFINITION_SCHEMA
from tests.factories import RecipeFactory, RecipeVersionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

MOCHA = {"product_id": "mocha", "name": "摩卡 Mocha", "category": "coffee", "price": "22.00"}


def data(reply, status=200):
    assert reply.status_code == status, reply.content
    return reply.json()["data"]


def product_ids(reply):
    return [r["product_id"] for r in data(reply)["results"]]


@pytest.fixture
def menu(merchant, other_merchant, latte):
    """Brew Co's latte (v1 published, v2 draft), americano, a retired flat white; Other Beans' own latte."""
    v1 = RecipeVersionFactory(recipe=latte, status="published")
    v2 = RecipeVersionFactory(recipe=latte)
    RecipeFactory(
        merchant=merchant, product_id="americano", name="Americano", category="coffee", price="15.00"
    )
    RecipeFactory(
        merchant=merchant, product_id="cocoa", name="Hot cocoa", category="chocolate", price="16.00"
    )
    RecipeFactory(merchant=merchant, product_id="flat-white", name="Flat white", is_retired=True)
    rival = RecipeFactory(merchant=other_merchant, product_id="latte", name="Rival latte")
    return {
        "v1": v1,
        "v2": v2,
        "rival": rival,
        "rival_v1": RecipeVersionFactory(recipe=rival, status="published"),
    }


@pytest.fixture
def ops(staff_client, merchant):
    return staff_client(Role.OPS, [merchant])


# --- Reading -------------------------------------------------------------------------------------------


def test_a_viewer_lists_their_merchants_recipes_with_their_versions_and_never_another_merchants(
    staff_client, merchant, menu
):
    listed = data(staff_client(Role.VIEWER, [merchant]).get("/api/v1/recipes"))

    assert [r["product_id"] for r in listed["results"]] == ["americano", "cocoa", "flat-white", "latte"]
    assert listed["count"] == 4
    latte = listed["results"][3]
    assert (latte["merchant_id"], latte["name"], latte["price"], latte["retired"]) == (
        merchant.pk,
        "Latte",
        "18.00",
        False,
    )
    assert latte["published_version"] == {"id": menu["v1"].pk, "number": 1}
    assert latte["draft_version"] == {"id": menu["v2"].pk, "number": 2}
    assert listed["results"][0]["published_version"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "Chocolate"}, ["cocoa"]),
        ({"retired": "true"}, ["flat-white"]),
        ({"retired": "false", "category": "coffee"}, ["americano", "latte"]),
        ({"query": "cocoa"}, ["cocoa"]),
        ({"query": "LATTE"}, ["latte"]),
        ({"ordering": "-price"}, ["latte", "flat-white", "cocoa", "americano"]),
    ],
)
def test_the_list_filters_searches_and_sorts(staff_client, merchant, menu, params, expected):
    assert product_ids(staff_client(Role.VIEWER, [merchant]).get("/api/v1/recipes", params)) == expected


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/recipes", {"merchant_id": "x"}),
        ("/api/v1/recipes", {"colour": "red"}),
        ("/api/v1/recipe-versions", {"status": "archived"}),
        ("/api/v1/recipe-versions", {"recipe_id": "1.5"}),
        ("/api/v1/recipe-versions", {"number": "1"}),
    ],
)
def test_a_filter_that_means_nothing_is_a_400_naming_it(
    staff_client, merchant, menu, path, params, expect_api_error
):
    error = expect_api_error(staff_client(Role.VIEWER, [merchant]).get(path, params), 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == list(params)


def test_the_versions_of_a_recipe_newest_first_with_their_definitions(staff_client, merchant, latte, menu):
    viewer = staff_client(Role.VIEWER, [merchant])

    versions = data(viewer.get(f"/api/v1/recipes/{latte.pk}/versions"))["results"]
    published = data(viewer.get(f"/api/v1/recipes/{latte.pk}/versions", {"status": "published"}))["results"]
    one = data(viewer.get(f"/api/v1/recipe-versions/{menu['v1'].pk}"))

    assert [(v["number"], v["status"]) for v in versions] == [(2, "draft"), (1, "published")]
    assert [v["number"] for v in published] == [1]
    assert (one["product_id"], one["recipe_id"], one["merchant_id"]) == ("latte", latte.pk, merchant.pk)
    assert one["definition"]["steps"][0] == {
        "action": "grind",
        "material": "BEAN-ARABICA",
        "amount": 18,
        "unit": "g",
    }


def test_the_version_list_filters_by_recipe_and_status(staff_client, merchant, latte, menu):
    viewer = staff_client(Role.VIEWER, [merchant])

    drafts = data(viewer.get("/api/v1/recipe-versions", {"status": "draft"}))["results"]
    of_latte = data(viewer.get("/api/v1/recipe-versions", {"recipe_id": latte.pk}))["results"]

    assert [v["id"] for v in drafts] == [menu["v2"].pk]
    assert [v["id"] for v in of_latte] == [menu["v2"].pk, menu["v1"].pk]


def test_lists_run_the_same_number_of_queries_for_3_or_30_recipes(staff_client, merchant, make_user):
    def queries_to_list(path):
        client = staff_client(Role.VIEWER, [merchant])
        with CaptureQueriesContext(connection) as queries:
            reply = client.get(path, {"page_size": 100})
        return len(queries), data(reply)["count"]

    def add_recipes(count):
        for _ in range(count):
            recipe = RecipeFactory(merchant=merchant)
            RecipeVersionFactory(recipe=recipe, status="published", published_by=make_user())
            RecipeVersionFactory(recipe=recipe, created_by=make_user())

    add_recipes(3)
    few = queries_to_list("/api/v1/recipes"), queries_to_list("/api/v1/recipe-versions")
    add_recipes(27)
    many = queries_to_list("/api/v1/recipes"), queries_to_list("/api/v1/recipe-versions")

    assert [count for _queries, count in few] == [3, 6]
    assert [count for _queries, count in many] == [30, 60]
    assert [queries for queries, _count in few] == [queries for queries, _count in many]


# --- The schema ----------------------------------------------------------------------------------------


def test_the_schema_is_served_as_the_file_it_is(staff_client, merchant):
    reply = staff_client(Role.VIEWER, [merchant]).get("/api/v1/recipes/schema")

    assert reply.status_code == 200
    assert reply["Content-Type"] == "application/json"
    assert reply.content == DEFINITION_SCHEMA.read_bytes()
    assert json.loads(reply.content)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_schema_is_for_staff_like_the_rest_of_the_staff_api(api, expect_api_error):
    expect_api_error(api.get("/api/v1/recipes/schema"), 401, "UNAUTHORIZED")


def test_the_openapi_schema_documents_the_recipe_endpoints(api):
    paths = api.get("/api/v1/schema", {"format": "json"}).json()["paths"]

    for path in (
        "/api/v1/recipes",
        "/api/v1/recipes/schema",
        "/api/v1/recipes/{id}",
        "/api/v1/recipes/{id}/retire",
        "/api/v1/recipes/{id}/unretire",
        "/api/v1/recipes/{id}/versions",
        "/api/v1/recipe-versions",
        "/api/v1/recipe-versions/{id}",
        "/api/v1/recipe-versions/{id}/publish",
        "/api/v1/recipe-versions/{id}/diff",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/recipes/{id}/versions"]) >= {"get", "post"}


# --- Writing recipes ------------------------------------------------------------------------------------


def test_ops_create_a_recipe_for_their_merchant_and_change_it(ops, merchant):
    created = data(ops.post("/api/v1/recipes", MOCHA, format="json"), 201)
    changed = data(ops.patch(f"/api/v1/recipes/{created['id']}", {"price": "23.50"}, format="json"))

    assert (created["merchant_id"], created["name"], created["published_version"]) == (
        merchant.pk,
        "摩卡 Mocha",
        None,
    )
    assert (changed["product_id"], changed["price"]) == ("mocha", "23.50")
    assert str(Recipe.objects.get(merchant=merchant, product_id="mocha").price) == "23.50"


def test_a_product_id_the_merchant_has_already_is_a_409_and_never_changes(ops, latte, expect_api_error):
    error = expect_api_error(
        ops.post("/api/v1/recipes", {**MOCHA, "product_id": "latte"}, format="json"), 409, "CONFLICT"
    )
    assert list(error["details"]["fields"]) == ["product_id"]

    error = expect_api_error(
        ops.patch(f"/api/v1/recipes/{latte.pk}", {"product_id": "caffe-latte"}, format="json"),
        400,
        "VALIDATION_ERROR",
    )
    assert list(error["details"]["fields"]) == ["product_id"]
    assert Recipe.objects.get(pk=latte.pk).product_id == "latte"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": "-1.00"}, "price"),
        ({"price": "1.234"}, "price"),
        ({"name": ""}, "name"),
        ({"product_id": "x" * 65}, "product_id"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(ops, body, field, expect_api_error):
    error = expect_api_error(
        ops.post("/api/v1/recipes", {**MOCHA, **body}, format="json"), 400, "VALIDATION_ERROR"
    )

    assert list(error["details"]["fields"]) == [field]
    assert not Recipe.objects.exists()


def test_a_recipe_retires_and_comes_back(ops, latte):
    assert data(ops.post(f"/api/v1/recipes/{latte.pk}/retire"))["retired"] is True
    assert Recipe.objects.get(pk=latte.pk).is_retired
    back = data(ops.post(f"/api/v1/recipes/{latte.pk}/unretire"))
    assert (back["retired"], back["retired_at"]) == (False, None)
    assert ops.delete(f"/api/v1/recipes/{latte.pk}").status_code == 405


# --- Versions --------------------------------------------------------------------------------------------


def test_ops_write_a_draft_change_it_publish_it_and_see_the_diff(ops, latte, latte_steps):
    draft = data(
        ops.post(
            f"/api/v1/recipes/{latte.pk}/versions", {"definition": {"steps": latte_steps()}}, format="json"
        ),
        201,
    )
    v1 = data(ops.post(f"/api/v1/recipe-versions/{draft['id']}/publish"))
    steps = latte_steps()
    steps[0]["amount"] = 20
    v2 = data(ops.post(f"/api/v1/recipes/{latte.pk}/versions", {"clone_from": v1["id"]}, format="json"), 201)
    changed = data(
        ops.patch(
            f"/api/v1/recipe-versions/{v2['id']}",
            {"definition": {"steps": steps}, "notes": "stronger"},
            format="json",
        )
    )
    diff = data(ops.get(f"/api/v1/recipe-versions/{v2['id']}/diff"))

    assert (draft["number"], draft["status"], draft["created_by"]) == (1, "draft", ops.user.email)
    assert (v1["status"], v1["published_by"]) == ("published", ops.user.email) and v1["published_at"]
    assert (v2["number"], v2["cloned_from_id"], v2["definition"]) == (2, v1["id"], v1["definition"])
    assert (changed["notes"], changed["definition"]["steps"][0]["amount"]) == ("stronger", 20)
    assert (diff["version"], diff["previous"]) == (
        {"id": v2["id"], "number": 2},
        {"id": v1["id"], "number": 1},
    )
    assert (
        '-      "amount": 18,' in diff["diff"].splitlines()
        and '+      "amount": 20,' in diff["diff"].splitlines()
    )
    recipe = data(ops.get(f"/api/v1/recipes/{latte.pk}"))
    assert (recipe["published_version"]["number"], recipe["draft_version"]["number"]) == (1, 2)


def test_a_definition_error_is_a_400_naming_the_json_pointer(ops, latte, latte_steps, expect_api_error):
    steps = latte_steps()
    steps[0]["amount"] = 0
    steps[2]["material"] = "NO-SUCH-POWDER"

    error = expect_api_error(
        ops.post(f"/api/v1/recipes/{latte.pk}/versions", {"definition": {"steps": steps}}, format="json"),
        400,
        "VALIDATION_ERROR",
    )

    assert error["details"]["fields"] == {
        "definition/steps/0/amount": ["must be more than 0"],
        "definition/steps/2/material": ["NO-SUCH-POWDER is not in the merchant's catalogue"],
    }
    assert error["message"] == "The definition has 2 errors."
    assert not RecipeVersion.objects.exists()


def test_a_patched_definition_is_checked_too(ops, latte, menu, expect_api_error):
    error = expect_api_error(
        ops.patch(
            f"/api/v1/recipe-versions/{menu['v2'].pk}",
            {"definition": {"steps": [{"action": "pour"}]}},
            format="json",
        ),
        400,
        "VALIDATION_ERROR",
    )

    assert error["details"]["fields"] == {"definition/steps/0/water_ml": ["is required"]}
    assert error["message"] == "definition/steps/0/water_ml: is required"
    assert RecipeVersion.objects.get(pk=menu["v2"].pk).definition == menu["v2"].definition


@pytest.mark.parametrize(
    "body",
    [{}, {"notes": "only notes"}, {"definition": None}, {"definition": {"steps": []}, "clone_from": 1}],
)
def test_a_new_draft_needs_a_definition_or_a_version_to_clone(ops, latte, body, expect_api_error):
    expect_api_error(
        ops.post(f"/api/v1/recipes/{latte.pk}/versions", body, format="json"), 400, "VALIDATION_ERROR"
    )
    assert not RecipeVersion.objects.exists()


def test_a_published_version_answers_409_to_any_change(ops, menu, expect_api_error):
    v1 = menu["v1"]

    for body in ({"notes": "edited"}, {"definition": {"steps": [{"action": "pour", "water_ml": 1}]}}):
        error = expect_api_error(
            ops.patch(f"/api/v1/recipe-versions/{v1.pk}", body, format="json"), 409, "CONFLICT"
        )
        assert "clone it into a new draft" in error["message"]
    expect_api_error(ops.post(f"/api/v1/recipe-versions/{v1.pk}/publish"), 409, "CONFLICT")
    assert ops.put(f"/api/v1/recipe-versions/{v1.pk}", {}, format="json").status_code == 405
    stored = RecipeVersion.objects.get(pk=v1.pk)
    assert (stored.notes, stored.definition) == ("", v1.definition)


def test_a_second_draft_is_a_409(ops, latte, menu, latte_steps, expect_api_error):
    for body in ({"definition": {"steps": latte_steps()}}, {"clone_from": menu["v1"].pk}):
        error = expect_api_error(
            ops.post(f"/api/v1/recipes/{latte.pk}/versions", body, format="json"), 409, "CONFLICT"
        )
        assert error["details"] == {"draft_version_id": menu["v2"].pk}
    assert latte.versions.count() == 2


def test_cloning_another_recipes_version_is_a_400_naming_clone_from(
    ops, merchant, latte, menu, expect_api_error
):
    mocha = RecipeFactory(merchant=merchant, product_id="mocha")

    for version in (menu["v1"], menu["rival_v1"]):  # another recipe's, another merchant's
        error = expect_api_error(
            ops.post(f"/api/v1/recipes/{mocha.pk}/versions", {"clone_from": version.pk}, format="json"),
            400,
            "VALIDATION_ERROR",
        )
        assert list(error["details"]["fields"]) == ["clone_from"]
    assert not mocha.versions.exists()


# --- Who may -------------------------------------------------------------------------------------------


def test_a_viewer_reads_but_writes_nothing(
    staff_client, merchant, latte, menu, latte_steps, expect_api_error
):
    viewer = staff_client(Role.VIEWER, [merchant])
    draft = menu["v2"]

    for method, path, body in (
        ("post", "/api/v1/recipes", MOCHA),
        ("patch", f"/api/v1/recipes/{latte.pk}", {"name": "Mine"}),
        ("post", f"/api/v1/recipes/{latte.pk}/retire", None),
        ("post", f"/api/v1/recipes/{latte.pk}/versions", {"clone_from": menu["v1"].pk}),
        ("patch", f"/api/v1/recipe-versions/{draft.pk}", {"notes": "mine"}),
        ("post", f"/api/v1/recipe-versions/{draft.pk}/publish", None),
    ):
        expect_api_error(getattr(viewer, method)(path, body, format="json"), 403, "FORBIDDEN")

    assert data(viewer.get(f"/api/v1/recipe-versions/{draft.pk}/diff"))["previous"]["number"] == 1
    latte.refresh_from_db()
    assert (latte.name, latte.is_retired) == ("Latte", False)
    assert RecipeVersion.objects.get(pk=draft.pk).status == "draft"
    assert not Recipe.objects.filter(product_id="mocha").exists()


def test_another_merchants_recipes_and_versions_are_not_found(ops, menu, expect_api_error):
    rival, rival_v1 = menu["rival"], menu["rival_v1"]

    for method, path in (
        ("get", f"/api/v1/recipes/{rival.pk}"),
        ("patch", f"/api/v1/recipes/{rival.pk}"),
        ("post", f"/api/v1/recipes/{rival.pk}/retire"),
        ("get", f"/api/v1/recipes/{rival.pk}/versions"),
        ("post", f"/api/v1/recipes/{rival.pk}/versions"),
        ("get", f"/api/v1/recipe-versions/{rival_v1.pk}"),
        ("patch", f"/api/v1/recipe-versions/{rival_v1.pk}"),
        ("post", f"/api/v1/recipe-versions/{rival_v1.pk}/publish"),
        ("get", f"/api/v1/recipe-versions/{rival_v1.pk}/diff"),
    ):
        expect_api_error(
            getattr(ops, method)(path, {"name": "x", "clone_from": rival_v1.pk}, format="json"),
            404,
            "NOT_FOUND",
        )

    assert "Rival latte" not in json.dumps(
        data(ops.get("/api/v1/recipes", {"merchant_id": rival.merchant_id}))
    )
    assert data(ops.get("/api/v1/recipe-versions", {"merchant_id": rival.merchant_id}))["count"] == 0
    rival.refresh_from_db()
    assert (rival.name, rival.is_retired) == ("Rival latte", False)
    assert rival.versions.count() == 1


def test_platform_staff_must_say_which_merchant_a_recipe_is_for(staff_client, merchant, expect_api_error):
    admin = staff_client(Role.ADMIN, is_platform_staff=True)

    error = expect_api_error(admin.post("/api/v1/recipes", MOCHA, format="json"), 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["merchant_id"]
    assert (
        data(admin.post("/api/v1/recipes", {**MOCHA, "merchant_id": merchant.pk}, format="json"), 201)[
            "merchant_id"
        ]
        == merchant.pk
    )


def test_a_path_that_is_no_recipe_id_is_the_envelopes_404(ops, expect_api_error):
    expect_api_error(ops.get("/api/v1/recipes/latte"), 404, "NOT_FOUND")
    expect_api_error(ops.get("/api/v1/recipes/schema/1"), 404, "NOT_FOUND")
