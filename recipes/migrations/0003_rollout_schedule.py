from django.db import migrations

from coffeeshop.schedules import ensure_interval_task, remove_task

ADVANCE = "Advance rollouts"


def schedule(apps, schema_editor):
    ensure_interval_task(
        apps,
        name=ADVANCE,
        task="recipes.advance_rollouts",
        every_seconds=15,
        description="Settles offered packages (installed, failed, timed out) and advances or halts each stage.",
    )


def unschedule(apps, schema_editor):
    remove_task(apps, name=ADVANCE)


class Migration(migrations.Migration):
    dependencies = [
        ("recipes", "0002_rollouts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
