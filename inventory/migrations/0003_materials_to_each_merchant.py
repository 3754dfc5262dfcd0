"""Materials become each merchant's own (step 2 of 3): the global catalogue is given to every merchant.

Every merchant gets a copy of every existing material, not only the merchants whose machines have
reported a bin of that code so far: bins tell which codes a merchant used until today, not which it
will use tomorrow, and a merchant's next machine carrying the same beans must not be refused for a
code that was valid for it yesterday. A copy a merchant does not use costs nothing and can be
disabled. The free-text category is mapped to the new kind (unknown ones become supplies), `pieces`
becomes pcs and any other unit outside g/ml/pcs becomes g. With no merchant at all there is no machine either, and the materials,
which cannot belong to no one, are dropped.
"""

from django.db import migrations

KIND_OF_CATEGORY = {
    "bean": "bean",
    "beans": "bean",
    "coffee": "bean",
    "powder": "powder",
    "sweetener": "powder",
    "sugar": "powder",
    "chocolate": "powder",
    "milk": "milk",
    "dairy": "milk",
    "syrup": "syrup",
    "water": "water",
    "cup": "cup",
    "cups": "cup",
    "consumable": "cup",
}
UNIT_OF = {"g": "g", "ml": "ml", "pcs": "pcs", "pc": "pcs", "piece": "pcs", "pieces": "pcs"}


def give_to_every_merchant(apps, schema_editor):
    Material = apps.get_model("inventory", "Material")
    Merchant = apps.get_model("accounts", "Merchant")
    merchant_ids = list(Merchant.objects.order_by("pk").values_list("pk", flat=True))
    globals_ = list(Material.objects.filter(merchant__isnull=True))
    if not merchant_ids:
        Material.objects.filter(merchant__isnull=True).delete()
        return
    first, others = merchant_ids[0], merchant_ids[1:]
    for material in globals_:
        material.kind = KIND_OF_CATEGORY.get(material.category.strip().lower(), "supplies")
        material.unit = UNIT_OF.get(material.unit.strip().lower(), "g")
        material.merchant_id = first
        material.save()
        values = {f.attname: getattr(material, f.attname) for f in Material._meta.fields if not f.primary_key}
        copies = [Material(**{**values, "merchant_id": merchant_id}) for merchant_id in others]
        Material.objects.bulk_create(copies)


class Migration(migrations.Migration):

    dependencies = [("inventory", "0002_material_per_merchant_fields")]

    operations = [migrations.RunPython(give_to_every_merchant, migrations.RunPython.noop)]
