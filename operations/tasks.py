"""Operations' Celery tasks: thin wrappers over services, safe to run twice, acknowledged late."""

from celery import shared_task

from devices import services as devices
from devices.models import Device
from operations.services import alarms, commands, job_files, jobs, notifications
from operations.services.analytics_export import run_analytics_export


@shared_task(name="operations.notify_alarm", acks_late=True)
def notify_alarm(alarm_id: int) -> list[str]:
    return notifications.notify_alarm(alarm_id)


@shared_task(name="operations.dispatch_command_batch", acks_late=True)
def dispatch_command_batch(job_id: int) -> int | None:
    """Create a batch's commands (its TaskJob); returns how many the batch holds, None if it did nothing."""
    job = commands.dispatch_batch(job_id)
    return job.result_rows if job else None


@shared_task(name="operations.export_analytics", acks_late=True)
def export_analytics(job_id: int) -> int | None:
    job = run_analytics_export(job_id)
    return job.result_rows if job else None


@shared_task(name="operations.sweep_commands", acks_late=True)
def sweep_commands() -> dict:
    outcome = commands.sweep_commands()
    return {name: len(items) for name, items in outcome.items()}


@shared_task(name="operations.flush_heartbeats", acks_late=True)
def flush_heartbeats() -> dict:
    """The heartbeat write-behind to the database, its bin levels judged for low-stock alarms, and the
    status history sampled (devices knows nothing of alarms)."""
    return {
        "flushed": devices.flush_heartbeats(on_bins=alarms.judge_flushed_bins),
        "sampled": devices.sample_status_history(),
    }


@shared_task(name="operations.mark_silent_devices_offline", acks_late=True)
def mark_silent_devices_offline() -> int:
    """The fleet's offline sweep plus its alarms (devices knows nothing of alarms)."""
    went_offline = devices.mark_silent_devices_offline(on_bins=alarms.judge_flushed_bins)
    alarms.machines_went_offline(Device.objects.filter(pk__in=went_offline))
    return len(went_offline)


@shared_task(name="operations.reclaim_stale_jobs", acks_late=True)
def reclaim_stale_jobs() -> dict:
    """Background jobs whose worker died go back to the workers (or fail visibly after a few starts)."""
    return {name: len(ids) for name, ids in jobs.reclaim_stale_jobs().items()}


@shared_task(name="operations.delete_expired_job_files", acks_late=True)
def delete_expired_job_files() -> dict:
    """The files of jobs finished more than JOB_FILES_KEEP_DAYS ago, and those no job names, deleted."""
    return job_files.delete_expired_job_files()


@shared_task(name="operations.send_report", acks_late=True)
def send_report(subscription_id: int) -> bool:
    """A subscription's summary e-mail (its own beat entry sends it; operations.services.reports)."""
    from operations.services.reports import send_report as send

    return send(subscription_id)
