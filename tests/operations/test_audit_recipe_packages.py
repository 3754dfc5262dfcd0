"""Building a recipe package, and building a stopped one again, leave their audit rows: who, from
where, on which package and what it holds."""

import pytest
from django.urls import reverse

from accounts.models import Role
from audit.models import OperationLog
from operations.services import cancel_job
from recipes.models import RecipePackage
from tests.operations.batches import worker_at_commit
from tests.recipes.packages_fixtures import recipe_version, signed_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords", "media_root")]

STAFF_IP = "10.1.2.3"


def audited(action: str, package: RecipePackage) -> OperationLog:
    return OperationLog.objects.filter(
        action=action, target_type="recipes.recipepackage", target_id=str(package.pk)
    ).latest("pk")


def test_a_package_built_through_the_api_and_again_through_the_admin_is_recorded(
    staff_client, make_user, merchant
):
    latte = recipe_version(merchant, "latte", number=3)
    ops = staff_client(Role.OPS, [merchant])
    body = {"version": "2026.11.4", "machine_models": ["CM-2000"], "recipe_versions": [latte.pk]}
    reply = ops.post("/api/v1/packages", body, format="json", REMOTE_ADDR=STAFF_IP)
    package = RecipePackage.objects.get(pk=reply.json()["data"]["id"])

    row = audited("package.created", package)
    assert (row.source, row.actor, row.ip_address, row.merchant_id) == (
        "api",
        ops.user,
        STAFF_IP,
        merchant.pk,
    )
    assert row.changes == {
        "version": "2026.11.4",
        "machine_models": ["CM-2000"],
        "min_firmware": "",
        "recipe_versions": [latte.pk],
    }

    cancel_job(package.job)
    admin = make_user(Role.ADMIN, merchants=[merchant])
    client = signed_in(admin, REMOTE_ADDR=STAFF_IP)
    with worker_at_commit():
        client.post(
            reverse("admin:recipes_recipepackage_build_again", args=[package.pk]), {"_form_submitted": "True"}
        )
    package.refresh_from_db()
    row = audited("package.rebuilt", package)
    assert (row.source, row.actor, row.ip_address) == ("admin", admin, STAFF_IP)
    assert row.changes == {"job": package.job_id}
