"""The files background jobs store are deleted JOB_FILES_KEEP_DAYS after the job finished, and only
then: the job's page and the API say the file expired instead of offering a broken download."""

import os
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from inventory.services.import_jobs import confirm_material_import, run_material_import, start_material_import
from operations.models import TaskJob
from operations.services import finish_job
from operations.services.job_files import delete_expired_job_files
from orders.services import run_orders_export, start_orders_export
from tests.factories import UserFactory
from tests.inventory.test_import import GOOD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

KEEP = timedelta(days=7)


def no_queue(job_id):
    return None


@pytest.fixture
def ops(merchant):
    return UserFactory(role=Role.OPS, merchants=[merchant])


def finished_ago(job: TaskJob, age: timedelta) -> TaskJob:
    TaskJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - age)
    job.refresh_from_db()
    return job


def exported(user, age: timedelta) -> TaskJob:
    job = run_orders_export(start_orders_export(user, {}, enqueue=no_queue).pk)
    assert job.status == TaskJob.Status.SUCCEEDED and default_storage.exists(job.result_file.name)
    return finished_ago(job, age)


def previewed(user, merchant, age: timedelta | None = None) -> TaskJob:
    job = start_material_import(
        merchant=merchant, user=user, content=GOOD, file_name="m.csv", dry_run=True, enqueue=no_queue
    )
    job = run_material_import(job.pk, beat=False)
    assert job.status == TaskJob.Status.SUCCEEDED
    return finished_ago(job, age) if age else job


def confirmed(preview: TaskJob, user) -> TaskJob:
    return confirm_material_import(preview, user=user, enqueue=no_queue)


def stored(job: TaskJob) -> list[bool]:
    return [default_storage.exists(name) for name in job.stored_files]


def test_an_old_export_loses_its_file_and_says_so_where_it_was_offered(ops, expect_api_error):
    old, recent = exported(ops, KEEP + timedelta(hours=1)), exported(ops, KEEP - timedelta(hours=1))

    assert delete_expired_job_files() == {"jobs": 1, "orphans": 0}

    old.refresh_from_db()
    recent.refresh_from_db()
    assert stored(old) == [False] and old.files_deleted_at is not None
    assert stored(recent) == [True] and recent.files_deleted_at is None
    client = Client()
    client.force_login(ops)
    shown = client.get(f"/api/v1/jobs/{old.pk}").json()["data"]
    assert shown["download_url"] is None and shown["files_deleted_at"]
    error = expect_api_error(client.get(f"/api/v1/jobs/{old.pk}/download"), 404, "NOT_FOUND")
    assert error["details"]["reason"] == "expired" and "7 days" in error["message"]
    assert client.get(f"/api/v1/jobs/{recent.pk}/download").status_code == 200


def test_the_admin_job_page_says_the_file_expired_and_its_download_answers_410(ops):
    old = exported(ops, KEEP * 2)
    delete_expired_job_files()
    client = Client()
    client.force_login(ops)

    page = client.get(reverse("admin:operations_taskjob_change", args=[old.pk])).content.decode()
    download = client.get(reverse("admin:operations_taskjob_download", args=[old.pk]))

    assert "cs-job-expired" in page and "kept 7 days" in page
    assert download.status_code == 410 and "kept 7 days" in download.content.decode()
    status = client.get(reverse("admin:operations_taskjob_status", args=[old.pk])).json()
    assert status["download_url"] is None and status["files_deleted_at"]


def test_a_file_that_vanished_from_the_storage_answers_a_clear_error_not_a_500(ops, expect_api_error):
    job = exported(ops, timedelta(0))
    default_storage.delete(job.result_file.name)
    client = Client()
    client.force_login(ops)

    error = expect_api_error(client.get(f"/api/v1/jobs/{job.pk}/download"), 404, "NOT_FOUND")

    assert error["details"] == {"reason": "missing"}
    assert client.get(reverse("admin:operations_taskjob_download", args=[job.pk])).status_code == 410


def test_unfinished_jobs_keep_their_files_however_old(ops, merchant):
    pending = start_material_import(
        merchant=merchant, user=ops, content=GOOD, file_name="m.csv", dry_run=True, enqueue=no_queue
    )
    TaskJob.objects.filter(pk=pending.pk).update(created_at=timezone.now() - KEEP * 3)
    running = exported(ops, KEEP * 3)
    TaskJob.objects.filter(pk=running.pk).update(status=TaskJob.Status.RUNNING, finished_at=None)

    assert delete_expired_job_files() == {"jobs": 0, "orphans": 0}

    assert stored(pending) == [True] and stored(running) == [True]
    assert not TaskJob.objects.exclude(files_deleted_at=None).exists()


def test_an_old_import_loses_its_sheet_and_report_and_its_rows_answer_expired(
    ops, merchant, expect_api_error, django_capture_on_commit_callbacks
):
    preview = previewed(ops, merchant, KEEP * 2)
    assert stored(preview) == [True, True]  # the upload and the per-row report

    delete_expired_job_files()

    preview.refresh_from_db()
    assert stored(preview) == [False, False] and preview.files_deleted_at is not None
    client = Client()
    client.force_login(ops)
    shown = client.get(f"/api/v1/materials/import-jobs/{preview.pk}").json()["data"]
    assert (shown["rows_url"], shown["confirm_url"]) == (None, None)
    assert shown["counts"] == {"new": 3, "updated": 0, "unchanged": 0, "error": 0}, "the counts stay"
    rows = client.get(f"/api/v1/materials/import-jobs/{preview.pk}/rows")
    assert expect_api_error(rows, 404, "NOT_FOUND")["details"]["reason"] == "expired"
    with django_capture_on_commit_callbacks(execute=True):
        confirm = client.post(f"/api/v1/materials/import-jobs/{preview.pk}/confirm")
    assert expect_api_error(confirm, 409, "CONFLICT")["details"]["reason"] == "expired"
    assert TaskJob.objects.count() == 1, "no import of a file that is gone"
    page = client.get(reverse("admin:inventory_material_import_job", args=[preview.pk])).content.decode()
    assert "kept 7 days" in page and "Confirm import" not in page


def test_a_preview_keeps_its_sheet_while_its_confirmation_runs_and_for_the_keep_period_after(ops, merchant):
    preview = previewed(ops, merchant, KEEP * 2)
    importing = confirmed(preview, ops)  # pending: it will read the preview's stored sheet

    delete_expired_job_files()

    preview.refresh_from_db()
    assert stored(preview) == [True, True] and preview.files_deleted_at is None
    imported = run_material_import(importing.pk, beat=False)
    assert imported.status == TaskJob.Status.SUCCEEDED, imported.error

    delete_expired_job_files()  # the import finished just now: its sheet is the preview's too
    preview.refresh_from_db()
    assert stored(preview) == [True, True] and preview.files_deleted_at is None

    finished_ago(imported, KEEP + timedelta(minutes=1))
    assert delete_expired_job_files()["jobs"] == 2
    preview.refresh_from_db()
    imported.refresh_from_db()
    assert stored(preview) == [False, False] and stored(imported) == [False, False]
    assert preview.files_deleted_at and imported.files_deleted_at


def test_a_run_that_died_after_deleting_the_files_is_finished_by_the_next(ops):
    """What a SIGKILLed run leaves (files gone, the job not marked yet): the next run marks it."""
    job = exported(ops, KEEP * 2)
    default_storage.delete(job.result_file.name)

    assert delete_expired_job_files()["jobs"] == 1
    assert delete_expired_job_files()["jobs"] == 0, "a second run has nothing left to do"
    job.refresh_from_db()
    assert job.files_deleted_at is not None


def test_jobs_without_files_and_recipe_packages_are_left_alone(ops, merchant):
    failed = finish_job(start_orders_export(ops, {}, enqueue=no_queue), TaskJob.Status.FAILED, error="x")
    finished_ago(failed, KEEP * 2)
    package_file = default_storage.save("packages/1-2026.1.json", ContentFile(b"{}"))
    os.utime(default_storage.path(package_file), (0, 0))
    build = TaskJob.objects.create(
        kind=TaskJob.Kind.PACKAGE_BUILD, created_by=ops, params={"package": 1, "version": "2026.1"},
        status=TaskJob.Status.SUCCEEDED, finished_at=timezone.now() - KEEP * 2,
    )  # fmt: skip

    assert delete_expired_job_files() == {"jobs": 0, "orphans": 0}

    assert default_storage.exists(package_file)
    assert TaskJob.objects.filter(pk__in=[failed.pk, build.pk], files_deleted_at=None).count() == 2


def test_files_no_job_names_go_once_older_than_the_keep_period(ops):
    named = exported(ops, timedelta(0))
    orphan = default_storage.save("exports/orders-999999.csv", ContentFile(b"id\n"))
    fresh_orphan = default_storage.save("material-imports/abc.csv", ContentFile(b"code\n"))
    long_ago = (timezone.now() - KEEP * 2).timestamp()
    for name in (orphan, named.result_file.name):
        os.utime(default_storage.path(name), (long_ago, long_ago))

    assert delete_expired_job_files() == {"jobs": 0, "orphans": 1}

    assert not default_storage.exists(orphan)
    assert default_storage.exists(fresh_orphan), "it may belong to an upload not committed yet"
    assert default_storage.exists(named.result_file.name), "a job names it, however old the file"


def test_another_users_expired_job_is_not_found_rather_than_expired(ops, merchant, expect_api_error):
    old = exported(ops, KEEP * 2)
    delete_expired_job_files()
    other = Client()
    other.force_login(UserFactory(role=Role.OPS, merchants=[merchant]))

    error = expect_api_error(other.get(f"/api/v1/jobs/{old.pk}/download"), 404, "NOT_FOUND")

    assert "reason" not in error["details"], "nothing of someone else's job is told"
