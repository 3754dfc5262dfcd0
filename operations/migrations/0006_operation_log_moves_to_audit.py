# The audit trail moved to its own app (audit), the ground floor every app records into. The table is
# renamed here and the model leaves this app's state; audit.0001 takes it over without touching the data.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0005_flush_heartbeats_judges_bins"),
    ]

    operations = [
        migrations.AlterModelTable(name="operationlog", table="audit_operationlog"),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="OperationLog")],
            database_operations=[],
        ),
    ]
