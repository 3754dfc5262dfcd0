"""A package build whose Celery worker is SIGKILLed midway is finished by another worker: one file, every
recipe in it once, the bytes the package's SHA-256 names. Real worker processes, real Redis."""

import hashlib
import json
import os
import secrets

import pytest

from accounts.models import Role
from operations.models import TaskJob
from recipes.models import RecipePackage, RecipeVersion
from recipes.services.packages import package_bytes, package_recipe, start_package_build
from recipes.tasks import build_package
from tests.e2e.killed_workers import finished_by_another_worker, killed_midway
from tests.factories import MerchantFactory, UserFactory
from tests.recipes.packages_fixtures import many_published_versions

pytestmark = pytest.mark.django_db(transaction=True)

RECIPES = 300
# A progress report (and beat) after every recipe: the build takes seconds, long enough to be killed.
WORKER_ENV = {"PACKAGE_BUILD_CHUNK": "1"}


def test_a_build_whose_worker_is_killed_is_written_whole_by_another(django_db_blocker, tmp_path, settings):
    merchant = MerchantFactory(name="Killed build")
    ops = UserFactory(role=Role.OPS, merchants=[merchant])
    versions = many_published_versions(merchant, RECIPES)
    workers = {
        "queue": f"e2e-package-kill-{os.getpid()}-{secrets.token_hex(3)}",
        "django_db_blocker": django_db_blocker,
        "data_dir": tmp_path,
        **WORKER_ENV,
    }
    files = tmp_path / "media" / "packages"

    def start() -> TaskJob:
        return start_package_build(
            merchant=merchant,
            version="2026.11.4",
            machine_models=["CM-2000"],
            recipe_version_ids=[v.pk for v in versions],
            user=ops,
            enqueue=lambda job_id: build_package.apply_async([job_id], queue=workers["queue"]),
        ).job

    job = killed_midway(start, **workers)
    package = RecipePackage.objects.get(job=job)
    assert 0 < job.progress < 99
    assert package.status == RecipePackage.Status.BUILDING and not package.sha256
    assert not files.exists() or not list(files.iterdir())

    job = finished_by_another_worker(job, build_package, settings=settings, **workers)

    package.refresh_from_db()
    assert job.status == TaskJob.Status.SUCCEEDED and job.attempts == 2 and job.result_rows == RECIPES
    assert package.status == RecipePackage.Status.READY
    (stored,) = files.iterdir()
    assert stored.name == package.file.name.rsplit("/", 1)[-1]
    content = stored.read_bytes()
    assert hashlib.sha256(content).hexdigest() == package.sha256 and len(content) == package.size
    products = [recipe["product_id"] for recipe in json.loads(content)["recipes"]]
    assert products == sorted(f"drink-{n:04d}" for n in range(RECIPES))
    # What this process makes of the same package, byte for byte.
    bundled = RecipeVersion.objects.filter(packages=package).select_related("recipe")
    assert package_bytes(package, [package_recipe(v) for v in bundled]) == content
