"""A material sheet too large for a request, through the API: a 202 with a background job, its rows read
page by page, then a confirmation that imports the file once, all or nothing, into the importer's
merchant only."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from audit.models import OperationLog
from inventory.models import Material
from inventory.services.import_jobs import run_material_import
from operations.models import TaskJob
from tests.inventory.test_import import GOOD, HEADER, ONE_BAD, mine, seed_catalogue

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


@pytest.fixture
def catalogue(merchant, other_merchant):
    return seed_catalogue(merchant, other_merchant)


@pytest.fixture
def large(settings):
    """Any sheet of more than two rows is large."""
    settings.MATERIAL_IMPORT_SYNC_MAX_ROWS = 2


def started(client, content, django_capture_on_commit_callbacks, **fields) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        reply = client.post(
            "/api/v1/materials/import",
            {"file": SimpleUploadedFile("materials.csv", content), **fields},
            format="multipart",
        )
    assert reply.status_code == 202, reply.content
    return reply.json()["data"]


def worked(client, job: dict) -> dict:
    """What the worker does with the job (the Celery wiring is tested end to end), then the job's reply."""
    run_material_import(job["id"], beat=False)
    return client.get(f"/api/v1/materials/import-jobs/{job['id']}").json()["data"]


def test_a_large_sheet_previews_in_the_background_and_imports_once_confirmed(
    staff_client, merchant, catalogue, large, django_capture_on_commit_callbacks
):
    ops = staff_client(Role.OPS, [merchant])

    job = started(ops, GOOD, django_capture_on_commit_callbacks, dry_run="true")

    assert job["job"]["status"] == "pending" and job["job_url"] == f"/api/v1/jobs/{job['id']}"
    assert (job["rows"], job["dry_run"], job["confirm_url"]) == (3, True, None)
    preview = worked(ops, job)
    assert preview["job"]["status"] == "succeeded" and preview["job"]["result_rows"] == 3
    assert preview["counts"] == {"new": 1, "updated": 1, "unchanged": 1, "error": 0}
    new = ops.get(f"{preview['rows_url']}?status=new").json()["data"]
    assert new["count"] == 1 and new["results"][0]["row"] == 3
    assert new["results"][0]["values"]["name"] == "燕麦奶"
    assert "OAT-MILK" not in mine(merchant), "nothing is written before the confirmation"

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = ops.post(preview["confirm_url"])
    assert confirmed.status_code == 202, confirmed.content
    done = worked(ops, confirmed.json()["data"])

    assert done["job"]["status"] == "succeeded" and done["preview_id"] == job["id"]
    assert done["counts"] == {"new": 1, "updated": 1, "unchanged": 1, "error": 0}
    materials = mine(merchant)
    assert (materials["OAT-MILK"].name, materials["BEAN-ARABICA"].low_threshold_pct) == ("燕麦奶", 20)
    catalogue.refresh_from_db()
    assert catalogue.name == "Rival oat milk", "another merchant's OAT-MILK is not this file's"
    again = ops.post(preview["confirm_url"])
    assert again.status_code == 202 and again.json()["data"]["id"] == done["id"], "one import per preview"


def test_a_confirmed_import_run_again_after_its_commit_imports_nothing_twice(
    staff_client, merchant, catalogue, large, django_capture_on_commit_callbacks
):
    """The reclaim re-runs a job whose worker died after the import committed: it only says it is done."""
    ops = staff_client(Role.OPS, [merchant])
    job = worked(ops, started(ops, GOOD, django_capture_on_commit_callbacks))
    imported = OperationLog.objects.filter(action="material.imported").count()
    TaskJob.objects.filter(pk=job["id"]).update(status=TaskJob.Status.PENDING)  # as the reclaim does

    again = worked(ops, job)

    assert again["job"]["status"] == "succeeded" and again["job"]["attempts"] == 2
    assert again["counts"] == {"new": 1, "updated": 1, "unchanged": 1, "error": 0}
    assert OperationLog.objects.filter(action="material.imported").count() == imported == 2
    assert Material.objects.filter(merchant=merchant, code="OAT-MILK").count() == 1


def test_a_background_preview_names_each_row_and_column_in_error_and_cannot_be_confirmed(
    staff_client, merchant, large, django_capture_on_commit_callbacks, expect_api_error
):
    ops = staff_client(Role.OPS, [merchant])
    three_rows = ONE_BAD + b"CUP-8OZ,Cup,cup,pcs,,,,,1\r\n"

    preview = worked(ops, started(ops, three_rows, django_capture_on_commit_callbacks, dry_run="true"))

    assert preview["counts"] == {"new": 2, "updated": 0, "unchanged": 0, "error": 1}
    assert preview["confirm_url"] is None
    (bad,) = ops.get(f"{preview['rows_url']}?status=error").json()["data"]["results"]
    assert bad["row"] == 2 and set(bad["errors"]) == {"kind", "low_threshold_pct", "cost_per_unit"}
    error = expect_api_error(
        ops.post(f"/api/v1/materials/import-jobs/{preview['id']}/confirm"), 409, "CONFLICT"
    )
    assert "error" in error["message"]
    assert not mine(merchant)


def test_a_background_import_with_a_row_in_error_fails_and_writes_nothing(
    staff_client, merchant, large, django_capture_on_commit_callbacks
):
    ops = staff_client(Role.OPS, [merchant])
    three_rows = ONE_BAD + b"CUP-8OZ,Cup,cup,pcs,,,,,1\r\n"

    job = worked(ops, started(ops, three_rows, django_capture_on_commit_callbacks))

    assert job["job"]["status"] == "failed" and "nothing was imported" in job["job"]["error"]
    assert job["counts"]["error"] == 1
    assert not mine(merchant)


def test_background_true_takes_even_a_small_sheet_to_a_job(
    staff_client, merchant, django_capture_on_commit_callbacks
):
    ops = staff_client(Role.OPS, [merchant])

    job = started(ops, GOOD, django_capture_on_commit_callbacks, background="true")

    assert TaskJob.objects.get(pk=job["id"]).kind == TaskJob.Kind.MATERIAL_IMPORT
    assert worked(ops, job)["counts"]["new"] == 3


def test_a_small_sheet_is_still_answered_in_the_request(staff_client, merchant, large):
    ops = staff_client(Role.OPS, [merchant])
    two_rows = f"{HEADER}\nSUGAR,Sugar,powder,g,,15,,,1\nSALT,Salt,powder,g,,15,,,1\n".encode()

    reply = ops.post(
        "/api/v1/materials/import", {"file": SimpleUploadedFile("m.csv", two_rows)}, format="multipart"
    )

    assert reply.status_code == 200 and [r["status"] for r in reply.json()["data"]] == ["new", "new"]
    assert not TaskJob.objects.exists()


def test_another_user_neither_sees_nor_confirms_the_import(
    staff_client, merchant, other_merchant, large, django_capture_on_commit_callbacks, expect_api_error
):
    ops = staff_client(Role.OPS, [merchant])
    preview = worked(ops, started(ops, GOOD, django_capture_on_commit_callbacks, dry_run="true"))
    stranger = staff_client(Role.OPS, [other_merchant])
    colleague_viewer = staff_client(Role.VIEWER, [merchant])

    url = f"/api/v1/materials/import-jobs/{preview['id']}"

    expect_api_error(stranger.get(url), 404, "NOT_FOUND")
    expect_api_error(stranger.post(f"{url}/confirm"), 404, "NOT_FOUND")
    expect_api_error(colleague_viewer.post(f"{url}/confirm"), 403, "FORBIDDEN")
    assert not TaskJob.objects.filter(params__preview=preview["id"]).exists()


def test_the_rows_page_runs_the_same_queries_for_3_or_300_rows(
    staff_client, merchant, large, django_capture_on_commit_callbacks
):
    ops = staff_client(Role.OPS, [merchant])
    many = HEADER + "\n" + "".join(f"M-{n:03d},Material {n},powder,g,,15,,,1\n" for n in range(300))
    counted = []
    for content in (GOOD, many.encode()):
        job = worked(ops, started(ops, content, django_capture_on_commit_callbacks, dry_run="true"))
        with CaptureQueriesContext(connection) as queries:
            page = ops.get(f"{job['rows_url']}?page_size=200")
        assert page.status_code == 200
        counted.append(len(queries))

    assert counted[0] == counted[1]
