"""Recipe packages built by their job: the protocol's format as canonical JSON, the same bytes every
time, a build that failed or was canceled started over, and a ready package that never changes."""

import hashlib
import json
from datetime import UTC, datetime

import pytest
from django.core.files.storage import FileSystemStorage

from accounts.models import Role
from coffeeshop.exceptions import Conflict, Invalid
from operations.models import TaskJob
from operations.services import cancel_job
from recipes.models import RecipePackage
from recipes.services.packages import build_package, build_package_again, start_package_build
from tests.recipes.packages_fixtures import protocol_package_example, recipe_version, stored_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


@pytest.fixture
def ops(make_user, merchant):
    return make_user(Role.OPS, merchants=[merchant])


@pytest.fixture
def menu(merchant):
    """Brew Co's published latte v3 and mocha v1, and a newer draft of the latte."""
    for number in (1, 2):
        recipe_version(merchant, "latte", number=number, name="Latte")
    latte = recipe_version(merchant, "latte", number=3, name="Latte")
    mocha = recipe_version(
        merchant,
        "mocha",
        name="Mocha · 摩卡",
        price="21.5",
        steps=[{"action": "add", "material": "CHOCOLATE", "amount": 20, "unit": "g"}],
    )
    recipe_version(merchant, "latte", number=4, published=False)
    return {"latte": latte, "mocha": mocha}


def start(merchant, ops, versions, **fields):
    options = {"version": "2026.11.4", "machine_models": ["CM-2000"], "min_firmware": "1.4.2", **fields}
    return start_package_build(
        merchant=merchant,
        recipe_version_ids=[v.pk for v in versions],
        user=ops,
        enqueue=lambda job_id: None,
        **options,
    )


def built(package: RecipePackage) -> RecipePackage:
    build_package(package.job_id)  # what the worker runs; the Celery wiring is tested end to end
    package.refresh_from_db()
    return package


def keys_of(document: dict) -> dict:
    """A package's shape: its keys, its recipes' keys, and the keys each kind of step carries."""
    recipes = document["recipes"]
    return {
        "package": set(document),
        "recipes": {frozenset(recipe) for recipe in recipes},
        "steps": {step["action"]: set(step) for recipe in recipes for step in recipe["steps"]},
    }


def test_a_built_package_is_the_protocols_format_in_canonical_json(merchant, ops, menu):
    package = built(start(merchant, ops, [menu["mocha"], menu["latte"]]))
    content = stored_bytes(package)
    document = json.loads(content)

    assert package.status == RecipePackage.Status.READY and package.built_at is not None
    assert package.job.status == TaskJob.Status.SUCCEEDED and package.job.result_rows == 2
    assert keys_of(document) == keys_of(protocol_package_example())
    assert document["package_id"] == str(package.pk) and document["version"] == "2026.11.4"
    assert datetime.strptime(document["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    ) == package.created_at.replace(microsecond=0)
    assert [r["product_id"] for r in document["recipes"]] == ["latte", "mocha"]
    latte, mocha = document["recipes"]
    assert (latte["name"], latte["recipe_version"], latte["price"]) == ("Latte", "3", "18.00")
    assert latte["steps"] == menu["latte"].definition["steps"]
    assert (mocha["name"], mocha["price"]) == ("Mocha · 摩卡", "21.50")
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert content == canonical.encode("utf-8")
    assert "摩卡".encode() in content  # UTF-8 as is, not \\u escapes
    assert package.sha256 == hashlib.sha256(content).hexdigest() and package.size == len(content)


def test_a_build_that_failed_after_writing_its_file_is_built_again_into_the_same_bytes(
    merchant, ops, menu, monkeypatch, media_root
):
    save = FileSystemStorage.save

    def save_then_lose_the_connection(storage, name, content, **kwargs):
        save(storage, name, content, **kwargs)
        raise OSError("connection to the storage lost")

    package = start(merchant, ops, [menu["latte"], menu["mocha"]])
    with monkeypatch.context() as patched, pytest.raises(OSError):
        patched.setattr(FileSystemStorage, "save", save_then_lose_the_connection)
        build_package(package.job_id)
    package.refresh_from_db()
    assert package.status == RecipePackage.Status.FAILED and not package.sha256
    assert package.job.status == TaskJob.Status.FAILED and "storage lost" in package.job.error
    (left_behind,) = (media_root / "packages").iterdir()
    first_bytes = left_behind.read_bytes()

    package = build_package_again(package, user=ops, enqueue=lambda job_id: None)
    assert package.status == RecipePackage.Status.BUILDING
    package = built(package)

    assert package.status == RecipePackage.Status.READY
    assert stored_bytes(package) == first_bytes
    assert package.sha256 == hashlib.sha256(first_bytes).hexdigest()
    assert [path.name for path in (media_root / "packages").iterdir()] == [left_behind.name]


def test_a_second_delivery_of_the_build_changes_nothing(merchant, ops, menu):
    package = built(start(merchant, ops, [menu["latte"]]))
    sha256, file_name, built_at = package.sha256, package.file.name, package.built_at

    assert build_package(package.job_id) is None
    package.refresh_from_db()
    assert (package.sha256, package.file.name, package.built_at) == (sha256, file_name, built_at)


def test_a_ready_package_is_never_built_again(merchant, ops, menu):
    package = built(start(merchant, ops, [menu["latte"]]))

    with pytest.raises(Conflict):
        build_package_again(package, user=ops, enqueue=lambda job_id: None)
    assert TaskJob.objects.filter(kind=TaskJob.Kind.PACKAGE_BUILD).count() == 1


def test_a_build_canceled_before_it_ran_leaves_a_failed_package_that_may_be_built_again(merchant, ops, menu):
    package = start(merchant, ops, [menu["latte"]])
    with pytest.raises(Conflict):  # its job is still to run
        build_package_again(package, user=ops, enqueue=lambda job_id: None)
    cancel_job(package.job)

    assert build_package(package.job_id) is None
    package.refresh_from_db()
    assert package.status == RecipePackage.Status.FAILED and not package.file

    package = built(build_package_again(package, user=ops, enqueue=lambda job_id: None))
    assert package.status == RecipePackage.Status.READY and package.job.attempts == 1


def test_a_build_canceled_midway_stops_at_its_next_report(merchant, ops, menu, settings, monkeypatch):
    settings.PACKAGE_BUILD_CHUNK = 1
    package = start(merchant, ops, [menu["latte"], menu["mocha"]])
    from operations.services import jobs

    report = jobs.report_progress

    def canceled_after_the_first_recipe(job, progress):
        cancel_job(job)
        return report(job, progress)

    monkeypatch.setattr("recipes.services.packages.report_progress", canceled_after_the_first_recipe)
    assert build_package(package.job_id).status == TaskJob.Status.CANCELED
    package.refresh_from_db()
    assert package.status == RecipePackage.Status.FAILED and not package.file and not package.sha256


@pytest.mark.parametrize(
    ("field", "fields"),
    [
        ("version", {"version": " "}),
        ("version", {"version": "2026/11"}),
        ("machine_models", {"machine_models": []}),
        ("machine_models", {"machine_models": [" ", ""]}),
        ("min_firmware", {"min_firmware": "v1.4"}),
        ("min_firmware", {"min_firmware": "1..4"}),
    ],
)
def test_a_package_with_a_field_out_of_shape_is_refused_naming_it(merchant, ops, menu, field, fields):
    with pytest.raises(Invalid) as refused:
        start(merchant, ops, [menu["latte"]], **fields)
    assert list(refused.value.details["fields"]) == [field]
    assert not RecipePackage.objects.exists() and not TaskJob.objects.exists()


def test_models_are_kept_sorted_once_each_and_firmware_is_optional(merchant, ops, menu):
    package = start(merchant, ops, [menu["latte"]], machine_models=[" CM-3000", "CM-2000", "CM-3000"])
    assert package.machine_models == ["CM-2000", "CM-3000"]
    assert start(merchant, ops, [menu["latte"]], version="2", min_firmware="").min_firmware == ""


def test_every_wrong_recipe_version_is_named_at_once(merchant, other_merchant, ops, menu):
    draft = recipe_version(merchant, "flat-white", published=False)
    retired = recipe_version(merchant, "chai", retired=True)
    theirs = recipe_version(other_merchant, "espresso")
    older_latte = menu["latte"].recipe.versions.get(number=1)

    with pytest.raises(Invalid) as refused:
        start(merchant, ops, [menu["latte"], older_latte, draft, retired, theirs])
    problems = refused.value.details["fields"]["recipe_versions"]

    assert problems == [
        f"No recipe version {theirs.pk} of this merchant.",
        "chai is retired: it is no longer sold.",
        "flat-white v1 is a draft: publish it first.",
        "latte: choose one version, not v1, v3.",
    ]
    assert not RecipePackage.objects.exists()


def test_a_version_is_unique_per_merchant_not_across_merchants(
    merchant, other_merchant, ops, menu, make_user
):
    start(merchant, ops, [menu["latte"]])
    with pytest.raises(Conflict) as refused:
        start(merchant, ops, [menu["mocha"]])
    assert list(refused.value.details["fields"]) == ["version"]
    assert RecipePackage.objects.count() == TaskJob.objects.count() == 1

    theirs = make_user(Role.OPS, merchants=[other_merchant])
    start(other_merchant, theirs, [recipe_version(other_merchant, "latte")])
    assert RecipePackage.objects.filter(version="2026.11.4").count() == 2
