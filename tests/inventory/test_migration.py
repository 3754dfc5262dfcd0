"""The move from one global catalogue to one per merchant keeps every machine's bins valid."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("inventory", "0001_initial"), ("accounts", "0001_initial")]
AFTER = [("inventory", "0004_material_merchant_required")]


@pytest.mark.django_db(transaction=True)
def test_each_merchant_gets_every_global_material_with_its_kind():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)  # accounts too: its later migrations add columns the old state cannot fill
    old = executor.loader.project_state(BEFORE).apps
    brew = old.get_model("accounts", "Merchant").objects.create(name="Brew Co")
    rival = old.get_model("accounts", "Merchant").objects.create(name="Other Beans")
    Material = old.get_model("inventory", "Material")
    Material.objects.create(code="BEAN-ARABICA", name="Arabica", unit="g", category="beans")
    Material.objects.create(code="CUP-12OZ", name="Cup", unit="pieces", category="cups", is_active=False)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    Material = executor.loader.project_state(AFTER).apps.get_model("inventory", "Material")

    rows = sorted(
        Material.objects.values_list("merchant_id", "code", "kind", "unit", "is_enabled", "low_threshold_pct")
    )
    assert rows == [
        (brew.pk, "BEAN-ARABICA", "bean", "g", True, 15),
        (brew.pk, "CUP-12OZ", "cup", "pcs", False, 15),
        (rival.pk, "BEAN-ARABICA", "bean", "g", True, 15),
        (rival.pk, "CUP-12OZ", "cup", "pcs", False, 15),
    ]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
