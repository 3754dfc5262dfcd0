"""A background job outlives its worker: a silent job goes to another worker and resumes without
doing anything twice; one that keeps killing its workers fails, saying so. (The same with real
processes and SIGKILL: tests/e2e/test_worker_killed.py.)"""

from datetime import timedelta

import pytest
from django.utils import timezone

from coffeeshop.celery import app
from operations.dispatch import JOB_TASKS
from operations.models import RemoteCommand, TaskJob
from operations.services import JobSuperseded, claim_job, commands, reclaim_stale_jobs, report_progress
from tests.factories import DeviceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(merchant, settings):
    settings.COMMAND_BATCH_CHUNK = 4
    fleet = [DeviceFactory(merchant=merchant) for _ in range(10)]
    return commands.start_batch(
        fleet[0].__class__.objects.filter(pk__in=[d.pk for d in fleet]),
        "lock",
        {"reason": "night"},
        user=UserFactory(is_platform_staff=True),
        target={"device_ids": [d.pk for d in fleet]},
        enqueue=lambda job_id: None,
    )


def later(seconds_past_stale: int = 1):
    return timezone.now() + timedelta(seconds=120 + seconds_past_stale)


def test_a_job_killed_half_way_is_given_back_and_resumes_without_duplicates(batch):
    job = claim_job(batch.job.pk)  # the first worker starts, writes one chunk, and dies
    commands._create_batch_commands(
        batch, job, batch.device_ids[:4], expires_in_s=3600, max_attempts=3, run_when_idle=False
    )
    queued = []

    outcome = reclaim_stale_jobs(later(), enqueue=queued.append)

    assert outcome == {"requeued": [job.pk], "failed": []}
    assert [queued_job.pk for queued_job in queued] == [job.pk]
    assert TaskJob.objects.get(pk=job.pk).status == TaskJob.Status.PENDING
    finished = commands.dispatch_batch(job.pk)  # the next worker
    assert finished.status == TaskJob.Status.SUCCEEDED and finished.attempts == 2
    made = RemoteCommand.objects.filter(batch=batch)
    assert made.count() == 10 == made.values("device_id").distinct().count()


def test_a_job_that_beats_is_left_alone(batch):
    job = claim_job(batch.job.pk)
    assert reclaim_stale_jobs(timezone.now() + timedelta(seconds=60), enqueue=pytest.fail) == {
        "requeued": [],
        "failed": [],
    }
    assert TaskJob.objects.get(pk=job.pk).status == TaskJob.Status.RUNNING


def test_a_pending_job_whose_task_never_reached_a_worker_is_queued_again(batch):
    queued = []
    assert reclaim_stale_jobs(later(), enqueue=queued.append)["requeued"] == [batch.job.pk]
    assert reclaim_stale_jobs(timezone.now() + timedelta(seconds=60), enqueue=queued.append)["requeued"] == []


def test_a_job_started_the_most_times_fails_visibly(batch, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    for _ in range(2):
        claim_job(batch.job.pk)
        TaskJob.objects.filter(pk=batch.job.pk).update(beat_at=timezone.now() - timedelta(hours=1))
        reclaim_stale_jobs(enqueue=lambda job: None)
    job = TaskJob.objects.get(pk=batch.job.pk)
    assert job.status == TaskJob.Status.FAILED
    assert "stopped 2 times" in job.error


def test_a_run_taken_over_by_another_worker_stops_at_its_next_report(batch):
    stale_run = claim_job(batch.job.pk)
    reclaim_stale_jobs(later(), enqueue=lambda job: None)
    claim_job(batch.job.pk)  # another worker has it now
    with pytest.raises(JobSuperseded):
        report_progress(stale_run, 50)


def test_a_second_delivery_of_a_running_job_does_nothing(batch):
    assert claim_job(batch.job.pk) is not None
    assert claim_job(batch.job.pk) is None


def test_every_kind_of_job_has_a_task_a_worker_knows():
    app.loader.import_default_modules()
    assert set(JOB_TASKS) == set(TaskJob.Kind.values)
    assert all(name in app.tasks for name in JOB_TASKS.values())
