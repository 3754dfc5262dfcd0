"""The consumption ledger: every sold item books what its recipe version takes from the machine's bins,
exactly once, and an item that cannot be booked is counted, not lost."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from inventory.models import Consumption, Unmatched
from inventory.services import book_consumption
from inventory.tasks import book_consumption as book_consumption_task
from tests.factories import (
    DeviceBinFactory,
    DeviceFactory,
    MaterialFactory,
    OrderFactory,
    RecipeFactory,
    RecipeVersionFactory,
)

pytestmark = pytest.mark.django_db

AMERICANO_STEPS = [
    {"action": "grind", "material": "BEAN-ARABICA", "amount": 18, "unit": "g"},
    {"action": "pour", "water_ml": 200},
]


@pytest.fixture
def shop(merchant):
    """A machine with beans, milk powder and water (its water bin's code is not WATER, its kind is), the
    latte (18 g beans, 40 + 180 ml water, 12 g milk) and the americano (18 g beans, 200 ml water)."""
    MaterialFactory(merchant=merchant, code="BEAN-ARABICA", kind="bean")
    MaterialFactory(merchant=merchant, code="MILK-POWDER", kind="powder")
    MaterialFactory(merchant=merchant, code="TAP", kind="water", unit="ml")
    device = DeviceFactory(merchant=merchant)
    bins = {
        "beans": DeviceBinFactory(device=device, index=1, material_code="BEAN-ARABICA"),
        "milk": DeviceBinFactory(device=device, index=2, material_code="MILK-POWDER"),
        "water": DeviceBinFactory(device=device, index=3, material_code="TAP", unit="ml", capacity=5000),
    }
    latte = RecipeFactory(merchant=merchant, product_id="latte")
    RecipeVersionFactory(recipe=latte, status="published")  # v1: the protocol's latte
    americano = RecipeFactory(merchant=merchant, product_id="americano")
    RecipeVersionFactory(recipe=americano, status="published", definition={"steps": AMERICANO_STEPS})
    return {"device": device, "bins": bins}


def sale(device, *items, minutes_ago=5, **fields):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    lines = [
        {"product_id": product, "name": product, "qty": qty, "unit_price": "18.00", "recipe_version": version}
        for product, qty, version in items
    ]
    return OrderFactory(device=device, items=lines, device_created_at=at, received_at=at, **fields)


def booked(bin_) -> float:
    return sum(Consumption.objects.filter(bin=bin_).values_list("amount", flat=True))


def test_each_item_takes_what_its_recipe_says_from_the_machines_bins_times_its_quantity(shop):
    sale(shop["device"], ("latte", 2, "1"), ("americano", 1, "1"))

    result = book_consumption()

    assert result == {"orders": 1, "booked": 5, "unmatched_items": 0}
    bins = shop["bins"]
    assert booked(bins["beans"]) == 2 * 18 + 18
    assert booked(bins["milk"]) == 2 * 12
    assert booked(bins["water"]) == 2 * (40 + 180) + 200  # brew and pour draw the water-kind bin
    assert set(Consumption.objects.values_list("unit", flat=True)) == {"g", "ml"}


def test_an_order_sent_twice_and_the_job_run_twice_book_each_item_once(shop, machine_client):
    machine = machine_client(shop["device"])
    order = {
        "order_id": "CM-1-0001",
        "created_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
        "currency": "CNY",
        "total": "36.00",
        "payment": {"method": "wechat", "status": "paid"},
        "items": [
            {"product_id": "latte", "name": "Latte", "qty": 2, "unit_price": "18.00", "recipe_version": "1"}
        ],
    }
    url = f"/api/v1/devices/{shop['device'].pk}/orders/create"
    assert machine.post(url, order, format="json").status_code == 201
    assert machine.post(url, order, format="json").json()["data"]["result"] == "duplicate"
    later = timezone.now() + timedelta(minutes=1)  # past the settling time

    book_consumption(now=later)
    book_consumption(now=later)

    assert Consumption.objects.count() == 3  # beans, water, milk of the one item
    assert booked(shop["bins"]["beans"]) == 36


def test_an_order_still_settling_is_booked_by_a_later_run_not_skipped(shop):
    sale(shop["device"], ("latte", 1, "1"), minutes_ago=0)

    assert book_consumption()["orders"] == 0
    assert book_consumption(now=timezone.now() + timedelta(minutes=1))["orders"] == 1
    assert booked(shop["bins"]["beans"]) == 18


def test_orders_are_booked_in_chunks_each_once_across_runs(shop):
    for minutes_ago in range(10, 0, -1):
        sale(shop["device"], ("americano", 1, "1"), minutes_ago=minutes_ago)
    assert book_consumption(chunk=3)["orders"] == 10
    sale(shop["device"], ("americano", 1, "1"), minutes_ago=1)

    assert book_consumption(chunk=3)["orders"] == 1
    assert booked(shop["bins"]["beans"]) == 11 * 18


def test_items_without_a_recipe_or_published_version_or_bin_are_counted_with_why(shop, merchant):
    draft = RecipeVersionFactory(recipe=RecipeFactory(merchant=merchant, product_id="mocha"))
    chai = RecipeFactory(merchant=merchant, product_id="chai")
    RecipeVersionFactory(
        recipe=chai,
        status="published",
        definition={"steps": [{"action": "add", "material": "CHAI-POWDER", "amount": 20, "unit": "g"}]},
    )
    sale(
        shop["device"],
        ("tea", 1, "1"),
        ("latte", 1, "7"),
        ("mocha", 1, str(draft.number)),
        ("chai", 1, "1"),
        ("latte", 1, "1"),
    )

    result = book_consumption()

    assert result == {"orders": 1, "booked": 3, "unmatched_items": 4}
    reasons = dict(Consumption.objects.filter(bin=None).values_list("order_item__product_id", "unmatched"))
    assert reasons == {
        "tea": Unmatched.NO_RECIPE,
        "latte": Unmatched.UNKNOWN_VERSION,
        "mocha": Unmatched.UNKNOWN_VERSION,
        "chai": Unmatched.NO_BIN,
    }
    assert booked(shop["bins"]["beans"]) == 18


def test_a_failed_payment_brews_nothing_while_unpaid_refunded_and_test_orders_did(shop):
    sale(shop["device"], ("americano", 1, "1"), payment_status="failed")
    sale(shop["device"], ("americano", 1, "1"), payment_status="unpaid")
    sale(shop["device"], ("americano", 1, "1"), payment_status="refunded")
    sale(shop["device"], ("americano", 1, "1"), is_test=True)

    assert book_consumption()["orders"] == 4

    assert booked(shop["bins"]["beans"]) == 3 * 18


def test_a_recipe_in_grams_books_into_a_bin_kept_in_millilitres_by_the_density(shop, merchant):
    MaterialFactory(merchant=merchant, code="SYRUP", kind="syrup", unit="ml", density="1.250")
    syrup = DeviceBinFactory(device=shop["device"], index=4, material_code="SYRUP", unit="ml")
    vanilla = RecipeFactory(merchant=merchant, product_id="vanilla")
    steps = [{"action": "add", "material": "SYRUP", "amount": 25, "unit": "g"}]
    RecipeVersionFactory(recipe=vanilla, status="published", definition={"steps": steps})
    sale(shop["device"], ("vanilla", 1, "1"))

    book_consumption_task.apply()

    assert booked(syrup) == 20  # 25 g at 1.25 g/ml


def test_another_merchants_recipe_of_the_same_product_books_nothing(shop, other_merchant):
    theirs = DeviceFactory(merchant=other_merchant)
    DeviceBinFactory(device=theirs, index=1, material_code="BEAN-ARABICA")
    sale(theirs, ("latte", 1, "1"))

    book_consumption()

    assert list(Consumption.objects.values_list("unmatched", flat=True)) == [Unmatched.NO_RECIPE]


def test_the_admin_lists_the_ledger_of_the_users_merchants_and_filters_what_was_not_booked(
    shop, admin_as, other_merchant
):
    sale(shop["device"], ("latte", 1, "1"), ("tea", 1, "1"))
    theirs = DeviceFactory(merchant=other_merchant, serial="THEIRS-1")
    sale(theirs, ("tea", 1, "1"))
    book_consumption()
    client = admin_as(Role.VIEWER)

    everything = client.get("/admin/inventory/consumption/").content.decode()
    not_booked = client.get("/admin/inventory/consumption/?unmatched__exact=no_recipe").content.decode()

    assert "18 g" in everything and "220 ml" in everything and "THEIRS-1" not in everything
    assert "No recipe for the product" in not_booked and "18 g" not in not_booked
