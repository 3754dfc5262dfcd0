from django.db import migrations

FLUSH = "Flush heartbeats"


def forwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # The flush now also writes bin levels and judges their low-stock alarms, which devices cannot do.
    PeriodicTask.objects.filter(name=FLUSH, task="devices.flush_heartbeats").update(
        task="operations.flush_heartbeats",
        description="Writes heartbeat readings and bin levels held in Redis to the database, opens and "
        "clears low-stock alarms, and samples the status history.",
    )


def backwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=FLUSH).update(task="devices.flush_heartbeats")


class Migration(migrations.Migration):
    dependencies = [("operations", "0004_command_batch_job"), ("devices", "0002_periodic_tasks")]
    operations = [migrations.RunPython(forwards, backwards)]
