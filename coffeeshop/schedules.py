"""Periodic schedules are django-celery-beat rows created by migrations, so `init-db` (migrate) makes
them, the admin can edit them, and beat picks up an edit without a restart."""


def ensure_interval_task(apps, *, name: str, task: str, every_seconds: int, description: str = "") -> None:
    """Create the periodic task if it is missing; never overwrite what an operator has edited."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(name=name).exists():
        return
    schedule, _ = IntervalSchedule.objects.get_or_create(every=every_seconds, period="seconds")
    PeriodicTask.objects.create(
        name=name, task=task, interval=schedule, enabled=True, description=description
    )


def remove_task(apps, *, name: str) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=name).delete()
