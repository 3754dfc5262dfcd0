"""The consumption ledger: what every sold item took from its machine's bins, by its recipe version.

Orders are the hot path, so nothing is booked while they arrive: a periodic job (`book_consumption`,
every minute) reads the orders received since its cursor, in arrival order, and books each item's
materials against the machine's bin of each material (water from `brew` and `pour` steps against the
machine's bin of a water-kind material, as a machine draws it). The rows of a chunk and the cursor's
move are one transaction, and the ledger is unique per item and material, so a worker killed midway
leaves either the whole chunk or nothing, and running twice books nothing twice.

Which orders consume: every order a machine reports except those whose payment failed (a machine does
not hand out a cup it was not paid for; the simulator brews none either). Unpaid orders (a corporate
account, a free vend) and refunded ones did brew. Test orders (`is_test`) brewed a real cup too, so
they consume: leaving them out would show up as unexplained drops in the variance.

An item whose product has no recipe, whose version is not a published one, or whose recipe names a
material the machine has no bin of (or in a unit that does not convert) is booked without a bin,
with the reason in `unmatched`, and counted in the job's result: staff find them under
Inventory → Consumption, filtered by that reason.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from devices.models import DeviceBin
from inventory.models import Consumption, LedgerCursor, Material, MaterialKind, Unmatched
from orders.models import Order, PaymentStatus
from recipes.models import RecipeVersion

CURSOR = "consumption"
WATER = object()  # what brew and pour steps draw: the machine's water bin, whatever its code
MATERIAL_ACTIONS = {"grind", "add"}
WATER_ACTIONS = {"brew", "pour"}
NOT_BREWED = (PaymentStatus.FAILED,)


def cup_draws(definition: dict) -> list[tuple[object, float, str]]:
    """(material code or WATER, amount, unit) of one cup made by a version's steps, summed by material."""
    draws: dict[object, list] = {}
    for step in definition.get("steps", []):
        action = step.get("action")
        if action in MATERIAL_ACTIONS:
            key, amount, unit = step["material"], float(step["amount"]), step["unit"]
        elif action in WATER_ACTIONS:
            key, amount, unit = WATER, float(step["water_ml"]), "ml"
        else:
            continue
        if key in draws and draws[key][1] == unit:
            draws[key][0] += amount
        else:
            draws[key] = [amount, unit]
    return [(key, amount, unit) for key, (amount, unit) in draws.items()]


def converted(amount: float, unit: str, to_unit: str, density: float | None) -> float | None:
    """`amount` of `unit` in `to_unit` (g and ml through the material's density), None if it won't go."""
    if unit == to_unit:
        return amount
    if density and {unit, to_unit} == {"g", "ml"}:
        return amount * density if unit == "ml" else amount / density
    return None


class _Chunk:
    """What booking a chunk of orders needs, read in a constant number of queries."""

    def __init__(self, orders: list[Order]):
        merchant_of = {order.device_id: order.merchant_id for order in orders}
        products = {item.product_id for order in orders for item in order.items.all()}
        self.recipes: set[tuple[int, str]] = set()
        self.versions: dict[tuple[int, str, str], list] = {}
        for merchant_id, product_id, number, status, definition in RecipeVersion.objects.filter(
            recipe__merchant_id__in=set(merchant_of.values()), recipe__product_id__in=products
        ).values_list("recipe__merchant_id", "recipe__product_id", "number", "status", "definition"):
            self.recipes.add((merchant_id, product_id))
            if status == RecipeVersion.Status.PUBLISHED:
                self.versions[(merchant_id, product_id, str(number))] = cup_draws(definition)
        self.materials = {
            (merchant_id, code): (kind, float(density) if density else None)
            for merchant_id, code, kind, density in Material.objects.filter(
                merchant_id__in=set(merchant_of.values())
            ).values_list("merchant_id", "code", "kind", "density")
        }
        self.bins: dict[tuple[int, object], DeviceBin] = {}
        # Highest index first, so that where a machine has two bins of one material the lowest wins.
        for bin_ in DeviceBin.objects.filter(device_id__in=merchant_of).order_by("device_id", "-index"):
            self.bins[(bin_.device_id, bin_.material_code)] = bin_
            kind, _ = self.materials.get((merchant_of[bin_.device_id], bin_.material_code), (None, None))
            if kind == MaterialKind.WATER:
                self.bins[(bin_.device_id, WATER)] = bin_

    def rows(self, order: Order) -> list[Consumption]:
        occurred_at = min(order.device_created_at, order.received_at)  # a clock ahead is not the future
        rows = []
        for item in order.items.all():
            booked = {"device_id": order.device_id, "order_item": item, "occurred_at": occurred_at}
            draws = self.versions.get((order.merchant_id, item.product_id, item.recipe_version))
            if draws is None:
                known = (order.merchant_id, item.product_id) in self.recipes
                why = Unmatched.UNKNOWN_VERSION if known else Unmatched.NO_RECIPE
                rows.append(Consumption(**booked, unmatched=why))
                continue
            for key, amount, unit in draws:
                rows.append(self._row(order, key, amount * item.qty, unit, booked))
        return rows

    def _row(self, order: Order, key, amount: float, unit: str, booked: dict) -> Consumption:
        bin_ = self.bins.get((order.device_id, key))
        code = bin_.material_code if key is WATER and bin_ else ("WATER" if key is WATER else key)
        if bin_ is None:
            why = Unmatched.NO_BIN
            return Consumption(**booked, material_code=code, amount=amount, unit=unit, unmatched=why)
        kind, density = self.materials.get((order.merchant_id, code), (None, None))
        if density is None and kind == MaterialKind.WATER:
            density = 1.0
        in_bin_unit = converted(amount, unit, bin_.unit, density)
        if in_bin_unit is None:
            return Consumption(
                **booked, material_code=code, amount=amount, unit=unit, unmatched=Unmatched.UNIT_MISMATCH
            )
        return Consumption(**booked, bin=bin_, material_code=code, amount=in_bin_unit, unit=bin_.unit)


def book_consumption(chunk: int | None = None, now=None) -> dict:
    """Book every order received since the cursor (and settled), a chunk per transaction."""
    chunk = chunk or settings.CONSUMPTION_ORDER_CHUNK
    settled = (now or timezone.now()) - timedelta(seconds=settings.CONSUMPTION_SETTLE_S)
    LedgerCursor.objects.get_or_create(name=CURSOR)
    orders_read = booked = unmatched = 0
    while True:
        with transaction.atomic():
            cursor = LedgerCursor.objects.select_for_update().get(name=CURSOR)
            due = Order.objects.filter(received_at__lte=settled)
            if cursor.received_at is not None:
                due = due.filter(received_at__gte=cursor.received_at).exclude(
                    received_at=cursor.received_at, pk__lte=cursor.order_id
                )
            orders = list(due.order_by("received_at", "pk").prefetch_related("items")[:chunk])
            if not orders:
                break
            brewed = [order for order in orders if order.payment_status not in NOT_BREWED]
            ledger = _Chunk(brewed) if brewed else None
            rows = [row for order in brewed for row in ledger.rows(order)]
            Consumption.objects.bulk_create(rows, ignore_conflicts=True)
            cursor.received_at, cursor.order_id = orders[-1].received_at, orders[-1].pk
            cursor.save(update_fields=["received_at", "order_id"])
        orders_read += len(orders)
        booked += sum(1 for row in rows if not row.unmatched)
        unmatched += len({row.order_item.pk for row in rows if row.unmatched})
    return {"orders": orders_read, "booked": booked, "unmatched_items": unmatched}
