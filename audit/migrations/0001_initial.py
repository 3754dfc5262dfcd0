# The audit trail's model, taken over from operations (operations.0006 renamed its table): the state
# moves here, the rows stay where they are. Content types follow, so admin history keeps its links.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def content_type_follows(apps, schema_editor, old="operations", new="audit"):
    apps.get_model("contenttypes", "ContentType").objects.filter(app_label=old, model="operationlog").update(
        app_label=new
    )


def content_type_goes_back(apps, schema_editor):
    content_type_follows(apps, schema_editor, old="audit", new="operations")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('devices', '0002_periodic_tasks'),
        ('operations', '0006_operation_log_moves_to_audit'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='OperationLog',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name='when')),
                        ('source', models.CharField(choices=[('admin', 'Admin'), ('api', 'API'), ('machine', 'Machine'), ('system', 'System')], max_length=16, verbose_name='source')),
                        ('ip_address', models.GenericIPAddressField(blank=True, null=True, verbose_name='IP address')),
                        ('action', models.CharField(max_length=64, verbose_name='action')),
                        ('target_type', models.CharField(blank=True, max_length=64, verbose_name='target type')),
                        ('target_id', models.CharField(blank=True, max_length=64, verbose_name='target id')),
                        ('target_repr', models.CharField(blank=True, max_length=200, verbose_name='target')),
                        ('changes', models.JSONField(blank=True, default=dict, verbose_name='what changed')),
                        ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='who')),
                        ('device', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='devices.device', verbose_name='machine')),
                        ('merchant', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='accounts.merchant', verbose_name='merchant')),
                    ],
                    options={
                        'verbose_name': 'operation log entry',
                        'verbose_name_plural': 'operation log',
                        'ordering': ['-created_at', '-pk'],
                        'indexes': [models.Index(fields=['merchant', '-created_at'], name='oplog_merchant_recent'), models.Index(fields=['target_type', 'target_id'], name='oplog_target'), models.Index(fields=['action', '-created_at'], name='oplog_action_recent')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_follows, content_type_goes_back),
    ]
