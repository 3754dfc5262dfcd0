from celery import shared_task

from devices.services.history_rollup import prune_status_history, rollup_status_hours


@shared_task(name="devices.fold_status_history", acks_late=True)
def fold_status_history() -> dict:
    """Complete hours folded into DeviceStatusHour, then raw history past its days pruned."""
    return {"hours": rollup_status_hours(), "pruned": prune_status_history()}
