"""Materials become each merchant's own (step 1 of 3): the new columns, `merchant` still optional."""

import django.core.validators
import django.db.models.deletion
from decimal import Decimal
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("inventory", "0001_initial"),
    ]

    operations = [
        migrations.RenameField("material", "is_active", "is_enabled"),
        migrations.AlterField(
            model_name="material",
            name="code",
            field=models.CharField(
                help_text="As machines report it, e.g. BEAN-ARABICA.", max_length=64, verbose_name="code"
            ),
        ),
        migrations.AddField(
            model_name="material",
            name="merchant",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="materials",
                to="accounts.merchant",
                verbose_name="merchant",
            ),
        ),
        migrations.AddField(
            model_name="material",
            name="kind",
            field=models.CharField(default="supplies", max_length=16, verbose_name="kind"),
        ),
        migrations.AddField(
            model_name="material",
            name="density",
            field=models.DecimalField(
                blank=True,
                decimal_places=3,
                max_digits=6,
                null=True,
                validators=[django.core.validators.MinValueValidator(Decimal("0.001"))],
                verbose_name="density (g/ml)",
            ),
        ),
        migrations.AddField(
            model_name="material",
            name="low_threshold_pct",
            field=models.PositiveSmallIntegerField(
                default=15,
                validators=[django.core.validators.MaxValueValidator(100)],
                verbose_name="low threshold %",
            ),
        ),
        migrations.AddField(
            model_name="material",
            name="cost_per_unit",
            field=models.DecimalField(
                blank=True,
                decimal_places=4,
                max_digits=12,
                null=True,
                validators=[django.core.validators.MinValueValidator(Decimal("0"))],
                verbose_name="cost per unit",
            ),
        ),
        migrations.AddField(
            model_name="material",
            name="supplier",
            field=models.CharField(blank=True, max_length=120, verbose_name="supplier"),
        ),
        migrations.AddField(
            model_name="material",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, verbose_name="updated"),
        ),
    ]
