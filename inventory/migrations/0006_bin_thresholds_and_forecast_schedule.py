from django.db import migrations

from coffeeshop.schedules import ensure_interval_task, remove_task

FORECAST = "Forecast bins and find unreported refills"
OLD_DEFAULT_PCT = 15.0


def thresholds_from_materials(apps, schema_editor):
    """Bins kept the old fixed default until now: a bin still at it follows its material's default from
    here on; a bin with any other threshold was set by staff and keeps it."""
    DeviceBin = apps.get_model("devices", "DeviceBin")
    Material = apps.get_model("inventory", "Material")
    DeviceBin.objects.exclude(low_threshold_pct=OLD_DEFAULT_PCT).update(threshold_follows_material=False)
    for merchant_id, code, pct in Material.objects.exclude(low_threshold_pct=OLD_DEFAULT_PCT).values_list(
        "merchant_id", "code", "low_threshold_pct"
    ):
        DeviceBin.objects.filter(
            device__merchant_id=merchant_id, material_code=code, threshold_follows_material=True
        ).update(low_threshold_pct=pct)


def schedule(apps, schema_editor):
    ensure_interval_task(
        apps,
        name=FORECAST,
        task="inventory.forecast_bins",
        every_seconds=60,
        description="Days to empty for each bin reported since the last run; books refills no machine reported.",
    )


def unschedule(apps, schema_editor):
    remove_task(apps, name=FORECAST)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0005_bin_refill"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(thresholds_from_materials, migrations.RunPython.noop),
        migrations.RunPython(schedule, unschedule),
    ]
