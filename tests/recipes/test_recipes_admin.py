"""The recipe pages of the admin: a draft's definition edited as JSON with each error under the field by
its pointer, the diff against the previous published version, publishing, cloning, read-only published
versions; all through the services the API calls."""

import json

import pytest
from django.urls import reverse

from accounts.models import Role
from audit.models import OperationLog
from inventory.services import set_enabled
from recipes.models import Recipe, RecipeVersion
from tests.factories import RecipeFactory, RecipeVersionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

SUBMITTED = {"_form_submitted": "True"}
HTMX = {"HX-Request": "true"}
NO_VERSION_ROWS = {"versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"}  # the read-only inline


def version_url(version, action=None) -> str:
    if action is None:
        return reverse("admin:recipes_recipeversion_change", args=[version.pk])
    return reverse(f"admin:recipes_recipeversion_{action}", args=[version.pk])


def recipe_url(recipe, action=None) -> str:
    if action is None:
        return reverse("admin:recipes_recipe_change", args=[recipe.pk])
    return reverse(f"admin:recipes_recipe_{action}", args=[recipe.pk])


def edit(client, version, definition, notes=""):
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return client.post(version_url(version), {"definition": text, "notes": notes})


def messages_of(page) -> list[str]:
    return [str(m) for m in page.context["messages"]]


@pytest.fixture
def versions(latte):
    """Latte v1 published, v2 a draft with stronger beans."""
    v1 = RecipeVersionFactory(recipe=latte, status="published")
    stronger = json.loads(json.dumps(v1.definition))
    stronger["steps"][0]["amount"] = 20
    return {"v1": v1, "v2": RecipeVersionFactory(recipe=latte, definition=stronger)}


# --- The recipe list and page ------------------------------------------------------------------------------


def test_the_recipe_list_shows_versions_filters_and_searches_and_only_the_users_merchant(
    admin_client_as, merchant, other_merchant, latte, versions
):
    RecipeFactory(merchant=merchant, product_id="cocoa", name="Hot cocoa", category="chocolate")
    RecipeFactory(merchant=other_merchant, product_id="rival-latte", name="Rival latte")
    client = admin_client_as(Role.VIEWER)
    changelist = reverse("admin:recipes_recipe_changelist")

    page = client.get(changelist)
    by_category = client.get(changelist, {"category": "chocolate"}).context["cl"].queryset
    searched = client.get(changelist, {"q": "latte"}).context["cl"].queryset

    assert page.status_code == 200
    rows = {
        r.product_id: (r.published_version_number, r.draft_version_number)
        for r in page.context["cl"].queryset
    }
    assert rows == {"latte": (1, 2), "cocoa": (None, None)}
    assert "Rival latte" not in page.content.decode()
    assert [r.product_id for r in by_category] == ["cocoa"]
    assert [r.product_id for r in searched] == ["latte"]


def test_the_recipe_page_lists_its_versions_with_links(admin_client_as, latte, versions):
    page = admin_client_as(Role.VIEWER).get(recipe_url(latte)).content.decode()

    assert version_url(versions["v1"]) in page and version_url(versions["v2"]) in page


def test_the_version_list_shows_only_the_users_versions_and_filters_by_status(
    admin_client_as, other_merchant, versions
):
    RecipeVersionFactory(recipe=RecipeFactory(merchant=other_merchant), status="published")
    client = admin_client_as(Role.VIEWER)
    changelist = reverse("admin:recipes_recipeversion_changelist")

    listed = client.get(changelist).context["cl"].queryset
    published = client.get(changelist, {"status__exact": "published"}).context["cl"].queryset

    assert sorted(v.pk for v in listed) == sorted([versions["v1"].pk, versions["v2"].pk])
    assert [v.pk for v in published] == [versions["v1"].pk]


def test_ops_add_a_recipe_through_the_service_and_never_change_its_product_id(admin_client_as, merchant):
    client = admin_client_as(Role.OPS)
    fields = {
        "merchant": merchant.pk,
        "product_id": "mocha",
        "name": "摩卡",
        "category": "coffee",
        "price": "22.00",
    }

    added = client.post(reverse("admin:recipes_recipe_add"), fields)
    mocha = Recipe.objects.get(product_id="mocha")
    changed = client.post(
        recipe_url(mocha), {**fields, "product_id": "hacked", "price": "23.00", **NO_VERSION_ROWS}
    )

    assert added.status_code == changed.status_code == 302
    mocha.refresh_from_db()
    assert (mocha.product_id, mocha.name, str(mocha.price)) == ("mocha", "摩卡", "23.00")
    assert OperationLog.objects.filter(action="recipe.created", target_id=str(mocha.pk)).exists()
    assert OperationLog.objects.filter(action="recipe.updated", target_id=str(mocha.pk)).exists()


def test_ops_retire_a_recipe_and_put_it_back_on_sale(admin_client_as, latte):
    client = admin_client_as(Role.OPS)

    page = client.get(recipe_url(latte)).content.decode()
    client.post(recipe_url(latte, "retire"), SUBMITTED, headers=HTMX)
    retired = Recipe.objects.get(pk=latte.pk).is_retired
    client.post(
        reverse("admin:recipes_recipe_changelist"),
        {"action": "unretire_recipes", "_selected_action": [latte.pk]},
    )

    assert recipe_url(latte, "retire") in page and recipe_url(latte, "unretire") not in page
    assert retired is True
    assert Recipe.objects.get(pk=latte.pk).is_retired is False


def test_another_merchants_recipe_and_version_are_missing_from_the_admin(admin_client_as, other_merchant):
    rival = RecipeFactory(merchant=other_merchant)
    rival_v1 = RecipeVersionFactory(recipe=rival, status="published")
    client = admin_client_as(Role.OPS)

    assert client.get(recipe_url(rival)).status_code in (302, 404)
    assert client.get(version_url(rival_v1)).status_code in (302, 404)
    assert client.post(version_url(rival_v1, "clone"), SUBMITTED).status_code == 404
    assert client.post(recipe_url(rival, "retire"), SUBMITTED).status_code == 404
    assert rival.versions.count() == 1 and not Recipe.objects.get(pk=rival.pk).is_retired


# --- A draft's page ---------------------------------------------------------------------------------------


def test_a_drafts_page_shows_its_definition_to_edit_and_the_diff_against_the_published_version(
    admin_client_as, versions
):
    page = admin_client_as(Role.OPS).get(version_url(versions["v2"]))

    content = page.content.decode()
    assert page.status_code == 200
    assert 'name="definition"' in content
    assert "&quot;amount&quot;: 20" in content  # indented JSON in the textarea, escaped
    assert "Changes since v1" in content
    assert page.context["diff_lines"][:2] == [("file", "--- v1"), ("file", "+++ v2")]
    assert [line for kind, line in page.context["diff_lines"] if kind in ("added", "removed")] == [
        '-      "amount": 18,',
        '+      "amount": 20,',
    ]
    assert version_url(versions["v2"], "publish") in content
    assert version_url(versions["v2"], "clone") not in content


def test_the_definitions_errors_are_shown_on_the_field_each_with_its_pointer(admin_client_as, versions):
    definition = json.loads(json.dumps(versions["v2"].definition))
    definition["steps"][0]["amount"] = 0
    definition["steps"][2]["material"] = "NO-SUCH-POWDER"
    definition["steps"].append({"action": "pour"})

    response = edit(admin_client_as(Role.OPS), versions["v2"], definition)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["definition"] == [
        "/steps/0/amount: must be more than 0",
        "/steps/2/material: NO-SUCH-POWDER is not in the merchant's catalogue",
        "/steps/4/water_ml: is required",
    ]
    content = response.content.decode()
    assert "/steps/4/water_ml: is required" in content
    assert "NO-SUCH-POWDER" in content  # the text typed stays in the textarea
    assert RecipeVersion.objects.get(pk=versions["v2"].pk).definition == versions["v2"].definition


@pytest.mark.parametrize(
    ("text", "error"),
    [("{not json", "Enter a valid JSON."), ("[" * 40 + "]" * 40, "Nested deeper than 32 levels.")],
)
def test_text_that_is_no_json_is_an_error_on_the_field(admin_client_as, versions, text, error):
    response = edit(admin_client_as(Role.OPS), versions["v2"], text)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["definition"] == [error]


def test_ops_save_a_draft_through_the_service(admin_client_as, versions):
    definition = json.loads(json.dumps(versions["v2"].definition))
    definition["steps"][1]["temperature_c"] = 90

    response = edit(admin_client_as(Role.OPS), versions["v2"], definition, notes="cooler")

    assert response.status_code == 302
    stored = RecipeVersion.objects.get(pk=versions["v2"].pk)
    assert (stored.definition["steps"][1]["temperature_c"], stored.notes) == (90, "cooler")
    assert OperationLog.objects.filter(action="recipe_version.updated", target_id=str(stored.pk)).exists()


def test_the_diff_is_escaped(admin_client_as, latte):
    version = RecipeVersionFactory(
        recipe=latte,
        status="published",
        definition={
            "steps": [{"action": "add", "material": "<script>alert(1)</script>", "amount": 1, "unit": "g"}]
        },
    )

    content = admin_client_as(Role.VIEWER).get(version_url(version)).content.decode()

    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


# --- Publishing, read-only, cloning ----------------------------------------------------------------------


def test_ops_publish_a_draft_and_its_page_is_read_only_from_then_on(admin_client_as, versions):
    client = admin_client_as(Role.OPS)
    v2 = versions["v2"]

    dialog = client.get(version_url(v2, "publish"))
    published = client.post(version_url(v2, "publish"), SUBMITTED, headers=HTMX)
    page = client.get(published["HX-Redirect"])
    refused = edit(client, v2, {"steps": [{"action": "pour", "water_ml": 1}]})

    assert dialog.status_code == 200 and "never changes" in dialog.content.decode()
    assert published["HX-Redirect"] == version_url(v2)
    assert messages_of(page) == ["latte v2 is published."]
    stored = RecipeVersion.objects.get(pk=v2.pk)
    assert (stored.status, stored.published_by) == ("published", client.user)
    content = page.content.decode()
    assert 'name="definition"' not in content and 'name="_save"' not in content
    assert "&quot;amount&quot;: 20" in content  # shown, indented, not editable
    assert version_url(v2, "publish") not in content and version_url(v2, "clone") in content
    assert refused.status_code == 403
    assert RecipeVersion.objects.get(pk=v2.pk).definition == v2.definition


def test_a_draft_whose_material_was_disabled_is_not_published_and_the_dialog_says_where(
    admin_client_as, merchant, versions
):
    set_enabled(merchant.materials.get(code="BEAN-ARABICA"), False)

    response = admin_client_as(Role.OPS).post(version_url(versions["v2"], "publish"), SUBMITTED, headers=HTMX)

    assert response.status_code == 200
    assert "/steps/0/material: BEAN-ARABICA is disabled in the catalogue" in response.content.decode()
    assert RecipeVersion.objects.get(pk=versions["v2"].pk).status == "draft"


def test_ops_clone_a_published_version_into_a_new_draft(admin_client_as, latte):
    v1 = RecipeVersionFactory(recipe=latte, status="published")
    client = admin_client_as(Role.OPS)

    response = client.post(version_url(v1, "clone"), {**SUBMITTED, "notes": "oat milk"}, headers=HTMX)

    draft = RecipeVersion.objects.get(recipe=latte, status="draft")
    assert response["HX-Redirect"] == version_url(draft)
    assert (draft.number, draft.cloned_from, draft.notes, draft.definition) == (
        2,
        v1,
        "oat milk",
        v1.definition,
    )
    assert messages_of(client.get(response["HX-Redirect"])) == ["latte v2 is a new draft, cloned from v1."]


def test_a_second_draft_is_refused_in_the_clone_dialog(admin_client_as, versions):
    client = admin_client_as(Role.OPS)

    page = client.get(version_url(versions["v1"])).content.decode()
    response = client.post(version_url(versions["v1"], "clone"), SUBMITTED, headers=HTMX)

    assert version_url(versions["v1"], "clone") not in page  # not offered while v2 is a draft
    assert "already has a draft, version 2" in response.content.decode()
    assert versions["v1"].recipe.versions.count() == 2


def test_ops_start_a_draft_from_scratch_for_a_recipe(admin_client_as, latte, latte_steps):
    client = admin_client_as(Role.OPS)
    add = reverse("admin:recipes_recipeversion_add")

    new_draft = client.get(recipe_url(latte, "new_draft"))
    form = client.get(new_draft["Location"]).context["adminform"].form
    added = client.post(
        add, {"recipe": latte.pk, "definition": json.dumps({"steps": latte_steps()}), "notes": ""}
    )
    again = client.post(
        add, {"recipe": latte.pk, "definition": json.dumps({"steps": latte_steps()}), "notes": ""}
    )

    assert new_draft["Location"] == f"{add}?recipe={latte.pk}"
    assert str(form.initial["recipe"]) == str(latte.pk)
    assert added.status_code == 302
    draft = RecipeVersion.objects.get(recipe=latte)
    assert (draft.number, draft.status, draft.created_by) == (1, "draft", client.user)
    assert again.status_code == 200
    assert "already has a draft" in again.content.decode()
    assert latte.versions.count() == 1


def test_the_recipe_dropdown_of_a_new_draft_offers_only_the_users_recipes(
    admin_client_as, latte, other_merchant
):
    RecipeFactory(merchant=other_merchant, product_id="rival-latte")

    form = admin_client_as(Role.OPS).get(reverse("admin:recipes_recipeversion_add")).context["adminform"].form

    assert [r.product_id for r in form.fields["recipe"].queryset] == ["latte"]


def test_a_viewer_reads_the_pages_but_changes_nothing(admin_client_as, versions):
    client = admin_client_as(Role.VIEWER)
    v1, v2 = versions["v1"], versions["v2"]

    page = client.get(version_url(v2)).content.decode()
    refusals = [
        client.post(version_url(v2, "publish"), SUBMITTED).status_code,
        client.post(version_url(v1, "clone"), SUBMITTED).status_code,
        edit(client, v2, {"steps": [{"action": "pour", "water_ml": 1}]}).status_code,
    ]

    assert 'name="definition"' not in page and version_url(v2, "publish") not in page
    assert "Changes since v1" in page
    assert refusals == [403, 403, 403]
    assert RecipeVersion.objects.get(pk=v2.pk).status == "draft"
    assert RecipeVersion.objects.count() == 2
