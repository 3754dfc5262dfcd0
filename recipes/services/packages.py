"""Recipe packages: a merchant's published recipe versions for some machine models, built in the
background into one immutable file that machines download.

The file is the protocol's package format (docs/protocol.md, Recipe packages) as canonical JSON: keys
sorted, no spaces, UTF-8 as is. The same package always gives the same bytes, hence the same SHA-256,
so a build that a dead worker left half done is simply run again from the start by another worker
(`operations.services.jobs`) and writes the same file. A ready package never changes: a different set
of recipes is a new version.
"""

import hashlib
import json
import re
from datetime import UTC

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Merchant
from audit import services as audit
from coffeeshop.exceptions import Conflict, Invalid, unique_or_conflict
from operations.models import TaskJob
from operations.services import JobSuperseded, claim_job, create_job, finish_job, report_progress
from recipes.models import RecipePackage, RecipeVersion

VERSION_FORMAT = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*")
FIRMWARE_FORMAT = re.compile(r"\d+(\.\d+)*")
MAX_MACHINE_MODELS = 50
MACHINE_MODEL_MAX_LENGTH = 64  # as devices.Device.model holds it
STOPPED = (TaskJob.Status.CANCELED, TaskJob.Status.FAILED)


# --- Creating a package ------------------------------------------------------------------------------


@transaction.atomic
def start_package_build(
    *,
    merchant: Merchant,
    version: str,
    machine_models,
    recipe_version_ids,
    user,
    enqueue,
    min_firmware: str = "",
    notes: str = "",
) -> RecipePackage:
    """Record the package (status building) and queue the job that builds its file (`enqueue(job_id)`,
    once this transaction commits); `build_package` is that job.

    Every field is checked before anything is written, and all refusals come at once as one Invalid
    naming each field. The version is unique per merchant (a Conflict naming `version`)."""
    version = (version or "").strip()
    min_firmware = (min_firmware or "").strip()
    models = sorted({str(model).strip() for model in machine_models or () if str(model).strip()})
    versions, version_problems = _chosen_versions(merchant, recipe_version_ids or ())
    fields = {
        "version": _version_problems(version),
        "machine_models": _model_problems(models),
        "min_firmware": _firmware_problems(min_firmware),
        "recipe_versions": version_problems,
    }
    fields = {name: problems for name, problems in fields.items() if problems}
    if fields:
        raise Invalid(_("The package is not valid."), details={"fields": fields})
    with unique_or_conflict("version", _("This merchant already has a package of this version.")):
        package = RecipePackage.objects.create(
            merchant=merchant,
            version=version,
            machine_models=models,
            min_firmware=min_firmware,
            notes=notes or "",
            created_by=user,
        )
    package.recipe_versions.set(versions)
    _queue_build(package, user=user, enqueue=enqueue)
    audit.record(
        "package.created",
        package,
        changes={
            "version": version,
            "machine_models": models,
            "min_firmware": min_firmware,
            "recipe_versions": sorted(v.pk for v in versions),
        },
    )
    return package


@transaction.atomic
def build_package_again(package: RecipePackage, *, user, enqueue) -> RecipePackage:
    """A failed or canceled build, started over by a new job. A ready package never changes (its
    machines hold its bytes), and one still building has its job: both are a Conflict."""
    package = RecipePackage.objects.select_for_update(of=("self",)).select_related("job").get(pk=package.pk)
    if package.status == RecipePackage.Status.READY:
        raise Conflict(_("This package is ready and never changes: make a new version instead."))
    if package.status == RecipePackage.Status.BUILDING and not build_has_stopped(package):
        raise Conflict(_("This package is being built already."))
    package.status = RecipePackage.Status.BUILDING
    package.save(update_fields=["status"])
    _queue_build(package, user=user, enqueue=enqueue)
    audit.record("package.rebuilt", package, changes={"job": package.job_id})
    return package


def build_has_stopped(package: RecipePackage) -> bool:
    """Whether a package that says building has no build left: its job was canceled before a worker
    took it, or failed (a worker that died too often). It may be built again."""
    job = package.job
    return package.status == RecipePackage.Status.BUILDING and job is not None and job.status in STOPPED


def _queue_build(package: RecipePackage, *, user, enqueue) -> None:
    package.job = create_job(
        kind=TaskJob.Kind.PACKAGE_BUILD,
        user=user,
        params={"package": package.pk, "version": package.version},
        enqueue=enqueue,
    )
    package.save(update_fields=["job"])


def _version_problems(version: str) -> list[str]:
    if not version:
        return [_("Give the package a version, e.g. 2026.11.4.")]
    if len(version) > 32 or not VERSION_FORMAT.fullmatch(version):
        return [_("A version is up to 32 letters, digits, dots, dashes or underscores, e.g. 2026.11.4.")]
    return []


def _model_problems(models: list[str]) -> list[str]:
    if not models:
        return [_("Name at least one machine model, e.g. CM-2000.")]
    if len(models) > MAX_MACHINE_MODELS:
        return [_("At most %(n)d machine models.") % {"n": MAX_MACHINE_MODELS}]
    too_long = [model for model in models if len(model) > MACHINE_MODEL_MAX_LENGTH]
    if too_long:
        return [_("A machine model is at most %(n)d characters.") % {"n": MACHINE_MODEL_MAX_LENGTH}]
    return []


def _firmware_problems(min_firmware: str) -> list[str]:
    if min_firmware and (len(min_firmware) > 32 or not FIRMWARE_FORMAT.fullmatch(min_firmware)):
        return [_("A firmware version is numbers separated by dots, e.g. 1.4.2.")]
    return []


def _chosen_versions(merchant: Merchant, ids) -> tuple[list[RecipeVersion], list[str]]:
    """The versions to bundle and what is wrong with the choice: each must be a published version of one
    of the merchant's recipes still sold, one per product. Another merchant's version is as unknown as
    one that does not exist."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return [], [_("Choose at least one published recipe version.")]
    found = {
        version.pk: version
        for version in RecipeVersion.objects.filter(pk__in=ids, recipe__merchant=merchant).select_related(
            "recipe"
        )
    }
    problems = []
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        problems.append(_("No recipe version %(ids)s of this merchant.") % {"ids": ", ".join(missing)})
    versions = sorted(found.values(), key=lambda v: (v.recipe.product_id, v.number))
    for version in versions:
        named = {"product": version.recipe.product_id, "number": version.number}
        if not version.is_published:
            problems.append(_("%(product)s v%(number)s is a draft: publish it first.") % named)
        if version.recipe.is_retired:
            problems.append(_("%(product)s is retired: it is no longer sold.") % named)
    by_product: dict[str, list[int]] = {}
    for version in versions:
        by_product.setdefault(version.recipe.product_id, []).append(version.number)
    for product, numbers in by_product.items():
        if len(numbers) > 1:
            problems.append(
                _("%(product)s: choose one version, not %(numbers)s.")
                % {"product": product, "numbers": ", ".join(f"v{n}" for n in numbers)}
            )
    return versions, problems


# --- The file ----------------------------------------------------------------------------------------


def package_recipe(version: RecipeVersion) -> dict:
    """One recipe as the package format carries it (the version's recipe must be loaded)."""
    recipe = version.recipe
    return {
        "product_id": recipe.product_id,
        "name": recipe.name,
        "recipe_version": str(version.number),
        "price": f"{recipe.price:.2f}",
        "steps": version.definition.get("steps", []),
    }


def package_bytes(package: RecipePackage, recipes: list[dict]) -> bytes:
    """The package file: the protocol's format, recipes by product id, as canonical JSON."""
    document = {
        "package_id": str(package.pk),
        "version": package.version,
        "created_at": package.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "recipes": sorted(recipes, key=lambda recipe: recipe["product_id"]),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_chunk_size() -> int:
    """Recipes the build reads between two progress reports (setting PACKAGE_BUILD_CHUNK, 50 by
    default); each report is also the job's sign of life."""
    return max(1, settings.PACKAGE_BUILD_CHUNK)


def build_package(job_id: int) -> TaskJob | None:
    """The job `start_package_build` queued: read the package's recipe versions chunk by chunk, with
    progress, write the file and mark the package ready with its SHA-256 and size.

    Safe to run twice: a second delivery of a job that is running or done does nothing, and a run after
    a dead worker writes the same bytes under the same name again. None when it did nothing."""
    job = claim_job(job_id)
    if job is None:
        _mark_failed(RecipePackage.objects.filter(job_id=job_id, job__status__in=STOPPED))
        return None
    package = RecipePackage.objects.get(job=job)
    if package.is_ready:  # built by a run that died before it could say so: the file is never rewritten
        return finish_job(job, TaskJob.Status.SUCCEEDED, rows=package.recipe_versions.count())
    try:
        recipes = _read_recipes(package, job)
        if recipes is None:
            _mark_failed(RecipePackage.objects.filter(pk=package.pk))
            return finish_job(job, TaskJob.Status.CANCELED)
        _store(package, package_bytes(package, recipes))
    except JobSuperseded:
        return None  # another worker took the job over after this one fell silent; it finishes it
    except Exception as error:
        _mark_failed(RecipePackage.objects.filter(pk=package.pk))
        finish_job(job, TaskJob.Status.FAILED, error=str(error))
        raise  # the worker logs it; the package and its job say the build failed
    return finish_job(job, TaskJob.Status.SUCCEEDED, rows=len(recipes))


def _read_recipes(package: RecipePackage, job: TaskJob) -> list[dict] | None:
    """The package's recipes in the file's order, a chunk per query; None when the job was canceled."""
    ids = [
        pk
        for pk, _product in sorted(
            package.recipe_versions.values_list("pk", "recipe__product_id"), key=lambda row: row[1]
        )
    ]
    size, recipes = build_chunk_size(), []
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        versions = RecipeVersion.objects.filter(pk__in=chunk).select_related("recipe").in_bulk()
        recipes += [package_recipe(versions[pk]) for pk in chunk]
        if not report_progress(job, len(recipes) * 99 // len(ids)):
            return None
    return recipes


def _store(package: RecipePackage, content: bytes) -> None:
    """Write the file and mark the package ready. The name is the package's own, so a run after one that
    died having written the file replaces it rather than leaving a second copy."""
    name = f"{package.pk}-{package.version}.json"
    storage = package.file.storage
    stored_name = package.file.field.generate_filename(package, name)
    if storage.exists(stored_name):
        storage.delete(stored_name)
    package.file.save(name, ContentFile(content), save=False)
    package.sha256 = hashlib.sha256(content).hexdigest()
    package.size = len(content)
    package.status = RecipePackage.Status.READY
    package.built_at = timezone.now()
    package.save(update_fields=["file", "sha256", "size", "status", "built_at"])


def _mark_failed(packages) -> None:
    packages.filter(status=RecipePackage.Status.BUILDING).update(status=RecipePackage.Status.FAILED)


# --- Reading packages ---------------------------------------------------------------------------------


def packages_for(user):
    """The packages `user` may see, newest first, with what their lists show (no query per row)."""
    return (
        RecipePackage.objects.for_user(user)
        .select_related("merchant", "job", "created_by")
        .order_by("-created_at", "-pk")
    )


def package_for_machine(merchant_id: int, package_id: str) -> RecipePackage | None:
    """The ready package `package_id` of the machine's merchant, or None: another merchant's package,
    one still building and one that does not exist are alike to a machine."""
    if not (package_id.isascii() and package_id.isdigit()) or int(package_id) >= 2**63:
        return None
    return RecipePackage.objects.filter(
        pk=int(package_id), merchant_id=merchant_id, status=RecipePackage.Status.READY
    ).first()


def read_package_file(package: RecipePackage) -> bytes:
    """A ready package's bytes, as stored."""
    with package.file.open("rb") as stored:
        return stored.read()
