from django.db import migrations

from coffeeshop.schedules import ensure_interval_task, remove_task

OFFLINE_SWEEP = "Mark silent machines offline"


def create(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # The offline sweep now also opens offline alarms, which devices cannot do itself.
    PeriodicTask.objects.filter(name=OFFLINE_SWEEP, task="devices.mark_silent_devices_offline").update(
        task="operations.mark_silent_devices_offline")
    ensure_interval_task(apps, name="Sweep remote commands", task="operations.sweep_commands", every_seconds=15,
                         description="Expires, retries or times out every unfinished remote command.")


def delete(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=OFFLINE_SWEEP).update(task="devices.mark_silent_devices_offline")
    remove_task(apps, name="Sweep remote commands")


class Migration(migrations.Migration):
    dependencies = [("operations", "0001_initial"), ("devices", "0002_periodic_tasks")]
    operations = [migrations.RunPython(create, delete)]
