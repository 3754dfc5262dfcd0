"""Payment methods become each merchant's own (the protocol's five are built in and need no row).

Until now a machine selling with a new method added it to one catalogue shared by every merchant. Each
such method becomes a method of the merchants whose machines sold with it, so nothing they took before
turns into an exception; the built-in ones lose their rows.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

BUILT_IN = {"wechat", "alipay", "card", "corp", "cash"}


def give_methods_to_their_merchants(apps, schema_editor):
    PaymentMethod = apps.get_model("orders", "PaymentMethod")
    Order = apps.get_model("orders", "Order")
    for method in PaymentMethod.objects.filter(merchant__isnull=True).exclude(code__in=BUILT_IN):
        merchant_ids = Order.objects.filter(payment_method=method.code).values_list("merchant_id", flat=True)
        PaymentMethod.objects.bulk_create(
            [
                PaymentMethod(merchant_id=merchant_id, code=method.code, name=method.name)
                for merchant_id in set(merchant_ids)
            ]
        )
    PaymentMethod.objects.filter(merchant__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("orders", "0002_search_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="paymentmethod",
            name="code",
            field=models.SlugField(help_text="As the machines report it.", max_length=32, verbose_name="code"),
        ),
        migrations.AddField(
            model_name="paymentmethod",
            name="merchant",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="payment_methods",
                to="accounts.merchant",
                verbose_name="merchant",
            ),
        ),
        migrations.RunPython(give_methods_to_their_merchants, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="paymentmethod",
            name="merchant",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="payment_methods",
                to="accounts.merchant",
                verbose_name="merchant",
            ),
        ),
        migrations.AlterField(
            model_name="paymentmethod",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="created"),
        ),
        migrations.AlterModelOptions(
            name="paymentmethod",
            options={
                "ordering": ["merchant__name", "code"],
                "verbose_name": "payment method",
                "verbose_name_plural": "payment methods",
            },
        ),
        migrations.AddConstraint(
            model_name="paymentmethod",
            constraint=models.UniqueConstraint(
                fields=("merchant", "code"), name="payment_method_once_per_merchant"
            ),
        ),
    ]
