"""An analytics export whose Celery worker is SIGKILLed midway is written whole by another worker: one
file with every machine's day exactly once and the fleet's days after them. Real worker processes, real
Redis."""

import csv
import io
import os
import secrets
from datetime import UTC, date, datetime, timedelta

import pytest

from accounts.models import Role
from devices.models import Device, DeviceStatusHour
from operations.models import TaskJob
from operations.services.analytics_export import start_analytics_export
from operations.tasks import export_analytics
from tests.e2e.killed_workers import finished_by_another_worker, killed_midway
from tests.factories import DeviceFactory, MerchantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

MACHINES, DAYS = 200, 30
FIRST_DAY = date(2026, 11, 1)
# A progress report (the job's sign of life) every few rows: the export is killed midway.
WORKER_ENV = {"ANALYTICS_EXPORT_CHUNK": "5"}


def test_an_uptime_export_whose_worker_is_killed_is_written_whole_by_another(
    django_db_blocker, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path / "media"  # the workers' storage (COFFEESHOP_DATA_DIR/media)
    merchant = MerchantFactory(name="Killed analytics", time_zone="UTC")
    viewer = UserFactory(role=Role.VIEWER, merchants=[merchant])
    machines = Device.objects.bulk_create(
        DeviceFactory.build(merchant=merchant, serial=f"UP-{n:04d}") for n in range(MACHINES)
    )
    noon = datetime.combine(FIRST_DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    DeviceStatusHour.objects.bulk_create(
        DeviceStatusHour(device=machine, hour=noon + timedelta(d), online_s=1800, known_s=3600, samples=1)
        for machine in machines
        for d in range(DAYS)
    )
    workers = {
        "queue": f"e2e-analytics-kill-{os.getpid()}-{secrets.token_hex(3)}",
        "django_db_blocker": django_db_blocker,
        "data_dir": tmp_path,
        **WORKER_ENV,
    }

    def start() -> TaskJob:
        return start_analytics_export(
            viewer,
            report="uptime",
            file_format="csv",
            first_day=FIRST_DAY,
            last_day=FIRST_DAY + timedelta(days=DAYS - 1),
            enqueue=lambda job_id: export_analytics.apply_async([job_id], queue=workers["queue"]),
        )

    job = killed_midway(start, **workers)
    assert 0 < job.progress < 99 and not job.result_file

    job = finished_by_another_worker(job, export_analytics, settings=settings, **workers)

    assert job.status == TaskJob.Status.SUCCEEDED and job.attempts == 2
    written = (settings.MEDIA_ROOT / job.result_file.name).read_text("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(written)))
    assert len(rows) == job.result_rows == MACHINES * DAYS + DAYS
    machine_days = [(row["machine"], row["date"]) for row in rows if row["machine_id"]]
    assert len(set(machine_days)) == len(machine_days) == MACHINES * DAYS
    assert {row["uptime_pct"] for row in rows} == {"50.0"}
    assert [row["machine"] for row in rows[-DAYS:]] == ["fleet"] * DAYS
