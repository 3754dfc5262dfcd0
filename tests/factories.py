from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from devices.models import Device, DeviceBin, DeviceStatusHistory, Location
from inventory.models import Material


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    name = factory.Sequence(lambda n: f"Merchant {n}")
    contact_email = factory.LazyAttribute(lambda m: f"ops@{m.name.lower().replace(' ', '')}.example.com")


class UserFactory(factory.django.DjangoModelFactory):
    """A back-office user; pass merchants=[...] to grant access, or is_platform_staff=True."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Sequence(lambda n: f"User {n}")
    role = Role.VIEWER
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "Passw0rd!x")

    @factory.post_generation
    def merchants(self, create, extracted, **kwargs):
        self.save()
        for merchant in extracted or ():
            grant_merchant_access(self, merchant)


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location

    merchant = factory.SubFactory(MerchantFactory)
    name = factory.Sequence(lambda n: f"Location {n}")
    city = "Shanghai"
    latitude = "31.230400"
    longitude = "121.473700"


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    merchant = factory.SubFactory(MerchantFactory)
    serial = factory.Sequence(lambda n: f"CM2K-{n:06d}")
    model = "CM-2000"
    firmware = "1.4.2"
    state = "idle"
    is_online = True
    last_seen_at = factory.LazyFunction(timezone.now)


class DeviceBinFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceBin

    device = factory.SubFactory(DeviceFactory)
    index = factory.Sequence(lambda n: n + 1)
    material_code = "BEAN-ARABICA"
    capacity = 1000
    remaining = 800
    level_pct = 80


class MaterialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Material
        django_get_or_create = ("merchant", "code")

    merchant = factory.SubFactory(MerchantFactory)
    code = factory.Sequence(lambda n: f"MAT-{n}")
    name = factory.LazyAttribute(lambda m: m.code.title())
    kind = "powder"
    unit = "g"


# The codes the simulated machines' bins carry (simulator.physics.DEFAULT_BINS).
DEMO_MATERIALS = ["BEAN-ARABICA", "MILK-POWDER", "SUGAR", "CHOCOLATE", "WATER"]


def merchant_with_catalogue(**fields) -> Merchant:
    """A merchant whose catalogue holds the demo materials, so that its machines' bins are accepted."""
    merchant = MerchantFactory(**fields)
    for code in DEMO_MATERIALS:
        MaterialFactory(merchant=merchant, code=code)
    return merchant


class DeviceStatusHistoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceStatusHistory

    device = factory.SubFactory(DeviceFactory)
    recorded_at = factory.LazyFunction(timezone.now)
    event = "sample"
    state = "idle"
    is_online = True
    temperature_c = 92.0


# --- Sales (orders) ------------------------------------------------------------------------------


class OrderFactory(factory.django.DjangoModelFactory):
    """A sale as if a machine had reported it: merchant and location copied from the machine, and one
    item (qty 1 at the order's total) unless items=[{...}, ...] is given (qty × unit_price per item)."""

    class Meta:
        model = "orders.Order"
        skip_postgeneration_save = True

    device = factory.SubFactory(DeviceFactory)
    merchant = factory.SelfAttribute("device.merchant")
    location = factory.SelfAttribute("device.location")
    machine_order_id = factory.Sequence(lambda n: f"ORD-{n:08d}")
    currency = "CNY"
    total = factory.LazyFunction(lambda: Decimal("18.00"))
    payment_method = "wechat"
    payment_status = "paid"
    transaction_id = factory.Sequence(lambda n: f"wx-{n:010d}")
    device_created_at = factory.LazyFunction(timezone.now)
    received_at = factory.LazyFunction(timezone.now)
    content_hash = factory.Sequence(lambda n: f"{n:064x}")

    @factory.post_generation
    def items(self, create, extracted, **kwargs):
        from orders.models import OrderItem
        from orders.services import rollups

        if not create:
            return
        self.total, self.refunded_total = Decimal(self.total), Decimal(self.refunded_total)  # given as text
        specs = (
            extracted
            if extracted is not None
            else [{"product_id": "latte", "name": "Latte", "qty": 1, "unit_price": self.total}]
        )
        items = OrderItem.objects.bulk_create(
            [
                OrderItem(
                    order=self, position=position, **{**spec, "unit_price": Decimal(spec["unit_price"])}
                )
                for position, spec in enumerate(specs)
            ]
        )
        rollups.add_sales([self], items)  # as ingest keeps them


class RefundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "orders.Refund"

    order = factory.SubFactory(OrderFactory)
    amount = factory.LazyFunction(lambda: Decimal("1.00"))
    reason = "customer complaint"
    status = "succeeded"
    created_by = factory.SubFactory(UserFactory)


# --- Recipes --------------------------------------------------------------------------------------

# The protocol's example latte (../shared/protocol.md, Recipe packages): its materials are DEMO_MATERIALS.
LATTE_STEPS = [
    {"action": "grind", "material": "BEAN-ARABICA", "amount": 18, "unit": "g"},
    {"action": "brew", "water_ml": 40, "temperature_c": 93},
    {"action": "add", "material": "MILK-POWDER", "amount": 12, "unit": "g"},
    {"action": "pour", "water_ml": 180},
]


class RecipeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "recipes.Recipe"

    merchant = factory.SubFactory(MerchantFactory)
    product_id = factory.Sequence(lambda n: f"product-{n}")
    name = factory.LazyAttribute(lambda r: r.product_id.replace("-", " ").title())
    category = "coffee"
    price = factory.LazyFunction(lambda: Decimal("18.00"))


class RecipeVersionFactory(factory.django.DjangoModelFactory):
    """A version as stored, without the services' checks: a draft unless status="published" (then with
    its publication time). Numbers follow on per recipe."""

    class Meta:
        model = "recipes.RecipeVersion"

    recipe = factory.SubFactory(RecipeFactory)
    number = factory.LazyAttribute(lambda v: v.recipe.versions.count() + 1)
    status = "draft"
    definition = factory.LazyFunction(lambda: {"steps": [dict(step) for step in LATTE_STEPS]})
    published_at = factory.LazyAttribute(lambda v: timezone.now() if v.status == "published" else None)
