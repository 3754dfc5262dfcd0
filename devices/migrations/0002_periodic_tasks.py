from django.db import migrations

from coffeeshop.schedules import ensure_interval_task, remove_task

TASKS = [
    ("Mark silent machines offline", "devices.mark_silent_devices_offline", 30,
     "Marks a machine offline when its last heartbeat is older than its offline timeout."),
    ("Flush heartbeats", "devices.flush_heartbeats", 15,
     "Writes heartbeat readings held in Redis to the database and samples the status history."),
]


def create(apps, schema_editor):
    for name, task, seconds, description in TASKS:
        ensure_interval_task(apps, name=name, task=task, every_seconds=seconds, description=description)


def delete(apps, schema_editor):
    for name, *_ in TASKS:
        remove_task(apps, name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create, delete)]
