"""Recipe packages in the back office: Ops build one from their merchant's published versions and
follow the build on its page, which offers the file once ready; a package is never edited, and a
merchant's users never meet another merchant's packages or recipes."""

import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from operations.models import TaskJob
from recipes.models import RecipePackage
from recipes.services.packages import start_package_build
from recipes.tasks import build_package
from tests.operations.batches import worker_at_commit
from tests.recipes.packages_fixtures import recipe_version, signed_in, stored_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords", "media_root")]

CHANGELIST = "/admin/recipes/recipepackage/"
ADD = "/admin/recipes/recipepackage/add/"


@pytest.fixture
def login(make_user, merchant):
    """login(role, platform=False) -> a client signed in as a fresh user of Brew Co (or platform staff)."""
    return lambda role, platform=False: signed_in(
        make_user(role, is_platform_staff=True) if platform else make_user(role, merchants=[merchant])
    )


@pytest.fixture
def menu(merchant, other_merchant):
    """Brew Co: latte v1 and v2 published, a draft flat white, a retired chai. Other Beans: a secret brew."""
    return {
        "latte1": recipe_version(merchant, "latte", number=1),
        "latte2": recipe_version(merchant, "latte", number=2),
        "draft": recipe_version(merchant, "flat-white", published=False),
        "retired": recipe_version(merchant, "chai", retired=True),
        "theirs": recipe_version(other_merchant, "secret-brew"),
    }


def form(merchant, *versions, **fields) -> dict:
    return {
        "_form_submitted": "True",
        "merchant": merchant.pk,
        "version": "2026.11.4",
        "machine_models": "CM-2000, CM-3000",
        "min_firmware": "1.4.2",
        "recipe_versions": [v.pk for v in versions],
        "notes": "",
        **fields,
    }


def page_of(package) -> str:
    return reverse("admin:recipes_recipepackage_change", args=[package.pk])


def build(merchant, user, *versions, version="2026.11.4") -> RecipePackage:
    with worker_at_commit():
        package = start_package_build(
            merchant=merchant,
            version=version,
            machine_models=["CM-2000"],
            recipe_version_ids=[v.pk for v in versions],
            user=user,
            enqueue=build_package.delay,
        )
    package.refresh_from_db()
    return package


def test_the_add_form_offers_only_the_merchants_published_versions_still_sold(login, menu):
    content = login(Role.OPS).get(ADD).content.decode()

    assert "latte v1" in content and "latte v2" in content
    assert "flat-white" not in content and "chai" not in content
    assert "secret-brew" not in content and "Other Beans" not in content


def test_ops_build_a_package_and_its_page_follows_the_build_then_offers_the_file(login, merchant, menu):
    ops = login(Role.OPS)
    with worker_at_commit():
        response = ops.post(ADD, form(merchant, menu["latte2"]))

    package = RecipePackage.objects.get()
    assert response.status_code == 302 and response["Location"] == page_of(package)
    assert (package.merchant, package.created_by, package.machine_models) == (
        merchant,
        ops.user,
        ["CM-2000", "CM-3000"],
    )
    page = ops.get(page_of(package)).content.decode()
    assert 'data-live="job"' in page and f'data-job-id="{package.job_id}"' in page
    assert reverse("admin:recipes_recipepackage_job", args=[package.pk]) in page
    assert "latte v2" in page and package.sha256 in page

    download = ops.get(reverse("admin:recipes_recipepackage_download", args=[package.pk]))
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == package.sha256
    assert download.content == stored_bytes(package)
    status = ops.get(reverse("admin:recipes_recipepackage_job", args=[package.pk])).json()
    assert (status["status"], status["progress"]) == ("succeeded", 100)


@pytest.mark.parametrize(
    ("field", "chosen", "fields"),
    [
        ("recipe_versions", ("latte1", "latte2"), {}),
        ("min_firmware", ("latte1",), {"min_firmware": "1.4-beta"}),
        ("machine_models", ("latte1",), {"machine_models": " , "}),
    ],
)
def test_a_package_that_cannot_be_built_is_shown_again_with_the_error_on_its_field(
    login, merchant, menu, field, chosen, fields
):
    response = login(Role.OPS).post(ADD, form(merchant, *(menu[name] for name in chosen), **fields))

    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    assert not RecipePackage.objects.exists() and not TaskJob.objects.exists()


def test_a_duplicate_version_is_shown_on_the_version_field(login, merchant, menu):
    ops = login(Role.OPS)
    build(merchant, ops.user, menu["latte1"])

    response = ops.post(ADD, form(merchant, menu["latte2"]))
    assert response.context["form"].errors["version"] == [
        "This merchant already has a package of this version."
    ]
    assert RecipePackage.objects.count() == 1


def test_a_version_of_another_merchant_cannot_be_slipped_into_the_form(login, merchant, menu):
    response = login(Role.OPS).post(ADD, form(merchant, menu["latte1"], menu["theirs"]))

    assert "recipe_versions" in response.context["form"].errors
    assert not RecipePackage.objects.exists()


def test_a_viewer_reads_packages_but_may_not_build_one(login, merchant, menu):
    package = build(merchant, login(Role.OPS).user, menu["latte1"])
    viewer = login(Role.VIEWER)

    assert viewer.get(ADD).status_code == 403
    assert viewer.post(ADD, form(merchant, menu["latte2"], version="2")).status_code == 403
    changelist = viewer.get(CHANGELIST).content.decode()
    assert "2026.11.4" in changelist and ADD not in changelist
    assert viewer.get(reverse("admin:recipes_recipepackage_download", args=[package.pk])).status_code == 200
    assert RecipePackage.objects.count() == 1


def test_a_package_page_is_read_only_for_everyone(login, merchant, menu):
    admin = login(Role.ADMIN)
    package = build(merchant, admin.user, menu["latte1"])

    page = admin.get(page_of(package))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert 'name="version"' not in page.content.decode()
    assert admin.post(page_of(package), {"version": "6.6.6"}).status_code == 403
    assert admin.get(reverse("admin:recipes_recipepackage_delete", args=[package.pk])).status_code == 403
    assert "build_again" not in page.content.decode()
    package.refresh_from_db()
    assert package.version == "2026.11.4"


def test_a_canceled_build_is_built_again_from_its_page(login, merchant, menu):
    ops = login(Role.OPS)
    package = start_package_build(
        merchant=merchant,
        version="7",
        machine_models=["CM-2000"],
        recipe_version_ids=[menu["latte1"].pk],
        user=ops.user,
        enqueue=lambda job_id: None,
    )
    ops.post(reverse("admin:operations_taskjob_cancel", args=[package.job_id]), {"_form_submitted": "True"})
    assert "build_again" in ops.get(page_of(package)).content.decode()

    with worker_at_commit():
        response = ops.post(
            reverse("admin:recipes_recipepackage_build_again", args=[package.pk]), {"_form_submitted": "True"}
        )
    assert response.status_code == 302
    package.refresh_from_db()
    assert package.status == RecipePackage.Status.READY


def test_another_merchants_package_is_missing_for_a_merchants_users(login, merchant, other_merchant, menu):
    theirs = build(other_merchant, login(Role.ADMIN, platform=True).user, menu["theirs"])
    admin = login(Role.ADMIN)

    assert "secret-brew" not in admin.get(CHANGELIST).content.decode()
    assert admin.get(page_of(theirs)).status_code == 302  # the admin's "does not exist" redirect
    for view in ("download", "job"):
        assert admin.get(reverse(f"admin:recipes_recipepackage_{view}", args=[theirs.pk])).status_code == 404


def test_the_package_list_costs_the_same_queries_for_one_package_as_for_many(login, merchant, menu):
    ops = login(Role.OPS)
    build(merchant, ops.user, menu["latte1"])
    ops.get(CHANGELIST)  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as few:
        assert ops.get(CHANGELIST).status_code == 200
    for n in range(5):
        build(merchant, ops.user, recipe_version(merchant, f"drink-{n}"), version=f"2026.12.{n}")
    with CaptureQueriesContext(connection) as many:
        listed = ops.get(CHANGELIST)

    assert listed.status_code == 200 and "2026.12.4" in listed.content.decode()
    assert len(many) == len(few)
