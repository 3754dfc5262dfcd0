"""A material import whose Celery worker is SIGKILLed midway leaves nothing written, and the reclaim's
second worker imports the stored file whole, once: every row one material, one audit row each. Real
worker processes, real PostgreSQL and Redis."""

import os
import secrets

import pytest
from django.db import connection

from accounts.models import Role
from audit.models import OperationLog
from inventory.models import Material
from inventory.services.import_jobs import confirm_material_import, run_material_import, start_material_import
from inventory.tasks import run_material_import as run_material_import_task
from operations.models import TaskJob
from tests.e2e.killed_workers import finished_by_another_worker, killed_midway
from tests.factories import MerchantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 3_000
HEADER = "code,name,kind,unit,density,low_threshold_pct,cost_per_unit,supplier,enabled"
# A progress report (the job's sign of life) five times a second: the import is killed mid-transaction.
WORKER_ENV = {"MATERIAL_IMPORT_BEAT_S": "0.2"}


def sheet() -> bytes:
    rows = [f"SYR-{n:05d},香草糖浆 #{n},syrup,ml,1.320,{5 + n % 30},0.0{n % 9},Monin,1" for n in range(ROWS)]
    return ("\ufeff" + HEADER + "\r\n" + "\r\n".join(rows) + "\r\n").encode()


def test_an_import_whose_worker_is_killed_writes_nothing_and_is_imported_once_by_another(
    django_db_blocker, tmp_path, settings
):
    if connection.vendor != "postgresql":
        pytest.skip(reason="needs PostgreSQL: on SQLite the import's transaction holds the only write lock")
    settings.MEDIA_ROOT = tmp_path / "media"  # the workers' storage (COFFEESHOP_DATA_DIR/media)
    merchant = MerchantFactory(name="Killed import")
    ops = UserFactory(role=Role.OPS, merchants=[merchant])
    workers = {
        "queue": f"e2e-import-kill-{os.getpid()}-{secrets.token_hex(3)}",
        "django_db_blocker": django_db_blocker,
        "data_dir": tmp_path,
        **WORKER_ENV,
    }
    preview = start_material_import(
        merchant=merchant, user=ops, content=sheet(), file_name="s.csv", dry_run=True, enqueue=lambda _: None
    )
    preview = run_material_import(preview.pk, beat=False)
    assert preview.params["counts"] == {"new": ROWS, "updated": 0, "unchanged": 0, "error": 0}

    def start() -> TaskJob:
        return confirm_material_import(
            preview,
            user=ops,
            enqueue=lambda job_id: run_material_import_task.apply_async([job_id], queue=workers["queue"]),
        )

    job = killed_midway(start, **workers)
    assert 0 < job.progress < 99
    assert not Material.objects.filter(merchant=merchant).exists(), "a killed import writes nothing"
    assert not OperationLog.objects.filter(action="material.imported").exists()
    assert not job.params.get("imported")

    job = finished_by_another_worker(job, run_material_import_task, settings=settings, **workers)

    assert job.status == TaskJob.Status.SUCCEEDED and job.attempts == 2 and job.result_rows == ROWS
    assert job.params["counts"] == {"new": ROWS, "updated": 0, "unchanged": 0, "error": 0}
    stored = dict(Material.objects.filter(merchant=merchant).values_list("code", "name"))
    assert stored == {f"SYR-{n:05d}": f"香草糖浆 #{n}" for n in range(ROWS)}
    assert OperationLog.objects.filter(action="material.imported", actor=ops).count() == ROWS
    assert confirm_material_import(preview, user=ops, enqueue=lambda _: None).pk == job.pk
