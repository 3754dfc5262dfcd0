"""A material sheet too large for a request, in the admin: the upload leads to the job's page, which
follows the preview job live and then shows the preview (never every row at once); the confirmation
starts the import job, whose page says what it wrote."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Role
from inventory.services.import_jobs import run_material_import
from operations.models import TaskJob
from tests.inventory.test_import import GOOD, HEADER, mine, seed_catalogue

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


@pytest.fixture(autouse=True)
def large(settings):
    """Any sheet of more than two rows is large."""
    settings.MATERIAL_IMPORT_SYNC_MAX_ROWS = 2


def upload(client, content, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        uploaded = client.post(
            reverse("admin:inventory_material_import"),
            {"format": "0", "import_file": SimpleUploadedFile("materials.csv", content)},
        )
    assert uploaded.status_code == 302, uploaded.content[-2000:]
    return uploaded["Location"]


def test_the_job_page_follows_the_preview_then_shows_it_and_the_confirmed_import(
    admin_as, merchant, other_merchant, django_capture_on_commit_callbacks
):
    rival_oat_milk = seed_catalogue(merchant, other_merchant)
    client = admin_as(Role.OPS)

    page_url = upload(client, GOOD, django_capture_on_commit_callbacks)

    waiting = client.get(page_url)
    job = waiting.context["job"]
    assert job.status == TaskJob.Status.PENDING and job.params["dry_run"] is True
    assert 'data-reload-when-finished="true"' in waiting.content.decode()
    assert "Confirm import" not in waiting.content.decode()

    run_material_import(job.pk, beat=False)  # what the worker does
    preview = client.get(page_url)
    assert preview.context["counts"] == {"new": 1, "updated": 1, "unchanged": 1, "error": 0}
    assert "燕麦奶" in preview.content.decode() and "Confirm import" in preview.content.decode()
    assert "data-reload-when-finished" not in preview.content.decode()
    assert "OAT-MILK" not in mine(merchant)

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(reverse("admin:inventory_material_confirm_import_job", args=[job.pk]))
    assert confirmed.status_code == 302
    importing = client.get(confirmed["Location"])
    import_job = importing.context["job"]
    assert import_job.status == TaskJob.Status.PENDING and import_job.params["dry_run"] is False
    assert "OAT-MILK" not in mine(merchant), "written only by the job"

    run_material_import(import_job.pk, beat=False)
    done = client.get(confirmed["Location"]).content.decode()

    assert "Import finished: 1 new, 1 updated, 1 unchanged." in done
    assert mine(merchant)["OAT-MILK"].name == "燕麦奶"
    rival_oat_milk.refresh_from_db()
    assert rival_oat_milk.name == "Rival oat milk"
    again = client.post(reverse("admin:inventory_material_confirm_import_job", args=[job.pk]))
    assert again["Location"] == confirmed["Location"], "a preview is imported once"


def test_a_large_preview_shows_its_rows_a_page_at_a_time_and_the_rows_in_error_first(
    admin_as, merchant, django_capture_on_commit_callbacks
):
    rows = [f"M-{n:03d},Material {n},powder,g,,15,,,1" for n in range(1, 301)]
    rows[249] = "M-250,Material 250,tea,g,,15,,,1"
    client = admin_as(Role.OPS)
    sheet = (HEADER + "\n" + "\n".join(rows) + "\n").encode()
    page_url = upload(client, sheet, django_capture_on_commit_callbacks)
    run_material_import(client.get(page_url).context["job"].pk, beat=False)

    first, third = client.get(page_url), client.get(f"{page_url}?page=3")

    assert [e["row"] for e in first.context["errors"]] == [250]
    assert first.context["errors"][0]["column"] == "kind" and first.context["errors"][0]["value"] == "tea"
    assert [r["row"] for r in first.context["rows"]] == list(range(1, 101))
    assert [r["row"] for r in third.context["rows"]] == list(range(201, 301))
    assert "Material 250" in third.content.decode() and "Material 250" not in first.content.decode()
    assert "Confirm import" not in first.content.decode()
