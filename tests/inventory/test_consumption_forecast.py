"""Days to empty from the last 7 days of consumption (each product's recipe, the hour of the day), and
the variance between what the sales took and what the level shows."""

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role
from devices.models import DeviceBin
from inventory.models import Refill, RefillSource
from inventory.services import book_consumption, expected_use, profile_bins
from tests.factories import (
    DeviceBinFactory,
    DeviceFactory,
    MaterialFactory,
    OrderFactory,
    RecipeFactory,
    RecipeVersionFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

# Yesterday at noon UTC: the moment the profile is taken, with a week of sales before it.
NOON = (
    (timezone.now() - timedelta(days=1)).astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
)
MORNINGS = [0.0] * 7 + [18.0, 18.0] + [0.0] * 15  # 18 g an hour from 07:00 to 09:00, nothing else


def curve_bin(**fields) -> DeviceBin:
    return DeviceBin(capacity=1000, remaining=500, level_pct=50, reported_at=NOON, **fields)


def test_expected_use_follows_the_hours_of_the_curve():
    bin_ = curve_bin(use_by_hour=MORNINGS, drain_per_day=500)

    assert expected_use(bin_, NOON.replace(hour=6, minute=30), NOON.replace(hour=8, minute=30)) == 27
    assert expected_use(bin_, NOON, NOON + timedelta(days=3)) == 3 * 36
    assert expected_use(bin_, NOON, NOON + timedelta(hours=18)) == 0  # until 06:00
    assert expected_use(bin_, NOON, NOON + timedelta(hours=20)) == 18  # through 08:00
    assert expected_use(bin_, NOON, NOON - timedelta(hours=1)) == 0


def test_without_consumption_history_expected_use_is_the_levels_pace():
    bin_ = curve_bin(use_by_hour=None, drain_per_day=48)

    assert expected_use(bin_, NOON, NOON + timedelta(hours=12)) == 24
    assert curve_bin(use_by_hour=None, drain_per_day=None).empty_at is None


@pytest.fixture
def shop(merchant):
    """Beans and milk; the latte (18 g beans, 12 g milk) and the doppio (36 g beans)."""
    MaterialFactory(merchant=merchant, code="BEAN-ARABICA", kind="bean")
    MaterialFactory(merchant=merchant, code="MILK-POWDER", kind="powder")
    device = DeviceFactory(merchant=merchant)
    beans = DeviceBinFactory(device=device, index=1, material_code="BEAN-ARABICA", reported_at=NOON)
    milk = DeviceBinFactory(device=device, index=2, material_code="MILK-POWDER", reported_at=NOON)
    latte = RecipeFactory(merchant=merchant, product_id="latte")
    RecipeVersionFactory(recipe=latte, status="published")
    doppio = RecipeFactory(merchant=merchant, product_id="doppio")
    steps = [{"action": "grind", "material": "BEAN-ARABICA", "amount": 36, "unit": "g"}]
    RecipeVersionFactory(recipe=doppio, status="published", definition={"steps": steps})
    return {"device": device, "beans": beans, "milk": milk}


def sell(device, product, at, qty=1):
    item = {"product_id": product, "name": product, "qty": qty, "unit_price": "18.00", "recipe_version": "1"}
    OrderFactory(device=device, items=[item], device_created_at=at, received_at=at)


def every_day(hour, minute=30):
    """The same time on each of the 7 days up to NOON (today's counts: it is before noon)."""
    return [NOON.replace(hour=hour, minute=minute) - timedelta(days=day) for day in range(7)]


def profiled(shop):
    book_consumption()
    profile_bins(now=NOON)
    for bin_ in (shop["beans"], shop["milk"]):
        bin_.refresh_from_db()


def test_each_bins_curve_is_its_materials_use_by_hour_from_each_products_recipe(shop):
    for at in every_day(7):
        sell(shop["device"], "latte", at)
    for at in every_day(10, minute=10):
        sell(shop["device"], "doppio", at, qty=2)

    profiled(shop)

    beans, milk = shop["beans"].use_by_hour, shop["milk"].use_by_hour
    assert beans[7] == 18 and beans[10] == 72 and sum(beans) == 90  # a latte a morning, 2 doppios at 10
    assert milk[7] == 12 and sum(milk) == 12


def test_a_bin_that_sells_only_in_the_mornings_empties_on_a_morning_not_along_a_straight_line(shop):
    for at in every_day(7) + every_day(8):
        sell(shop["device"], "latte", at)
    DeviceBin.objects.filter(pk=shop["beans"].pk).update(remaining=90, level_pct=9, drain_per_day=36)

    profiled(shop)

    # 36 g a day, all between 07:00 and 09:00: 90 g last two mornings and half of the third (a straight
    # line, 90 g at 36 g a day from noon, would have said midnight before it)
    assert shop["beans"].empty_at == NOON.replace(hour=8) + timedelta(days=3)


def test_a_bin_without_sales_keeps_the_levels_pace(shop):
    DeviceBin.objects.filter(pk=shop["milk"].pk).update(remaining=100, level_pct=10, drain_per_day=50)

    profiled(shop)

    assert shop["milk"].use_by_hour is None
    assert shop["milk"].empty_at == NOON + timedelta(days=2)


# --- Variance -------------------------------------------------------------------------------------------


def refill(bin_, at, before, after):
    Refill.objects.create(
        bin=bin_, device=bin_.device, bin_index=bin_.index, material_code=bin_.material_code, unit="g",
        remaining_before=before, remaining_after=after, source=RefillSource.STAFF, refilled_at=at,
    )  # fmt: skip


def lattes_since(device, start, count):
    for n in range(count):
        sell(device, "latte", start + timedelta(minutes=10 * (n + 1)))


@pytest.mark.parametrize(
    ("remaining", "variance", "flagged"),
    [(640, 0.0, False), (610, 8.3, False), (500, 38.9, True), (700, -16.7, True)],
)
def test_a_bin_whose_level_drops_more_or_less_than_its_sales_took_is_flagged(
    shop, remaining, variance, flagged
):
    start = NOON - timedelta(days=2)
    refill(shop["beans"], start, before=100, after=1000)
    lattes_since(shop["device"], start, 20)  # 20 × 18 g = 360 g expected
    DeviceBin.objects.filter(pk=shop["beans"].pk).update(remaining=remaining, level_pct=remaining / 10)

    profiled(shop)

    beans = shop["beans"]
    assert (beans.expected_use, beans.reported_drop) == (360, 1000 - remaining)
    assert (beans.variance_pct, beans.is_variance_flagged) == (variance, flagged)


def test_refills_in_between_count_what_they_put_in(shop):
    start = NOON - timedelta(days=3)
    refill(shop["beans"], start, before=100, after=1000)
    lattes_since(shop["device"], start, 20)
    refill(shop["beans"], start + timedelta(days=1), before=640, after=940)  # 300 g put in
    lattes_since(shop["device"], start + timedelta(days=1), 20)
    DeviceBin.objects.filter(pk=shop["beans"].pk).update(remaining=500, level_pct=50)

    profiled(shop)

    beans = shop["beans"]
    assert (beans.expected_use, beans.reported_drop) == (720, 1000 - 500 + 300)
    assert (beans.variance_pct, beans.is_variance_flagged) == (11.1, False)
    assert beans.variance_since == start


def test_a_refill_of_unknown_size_starts_the_window_and_too_little_expected_flags_nothing(shop):
    start = NOON - timedelta(days=2)
    refill(shop["beans"], start, before=100, after=1000)
    lattes_since(shop["device"], start, 20)
    refill(shop["beans"], NOON - timedelta(hours=5), before=None, after=1000)
    lattes_since(shop["device"], NOON - timedelta(hours=5), 5)  # 90 g: under a fifth of the bin
    DeviceBin.objects.filter(pk=shop["beans"].pk).update(remaining=500, level_pct=50)

    profiled(shop)

    beans = shop["beans"]
    assert (beans.expected_use, beans.reported_drop) == (90, 500)
    assert (beans.variance_pct, beans.is_variance_flagged) == (None, False)


def test_the_bin_page_shows_and_filters_the_flag_for_the_users_merchants_only(
    shop, staff_client, merchant, other_merchant
):
    DeviceBin.objects.filter(pk=shop["beans"].pk).update(variance_pct=38.9, is_variance_flagged=True)
    DeviceBinFactory(device=DeviceFactory(merchant=other_merchant), variance_pct=50, is_variance_flagged=True)
    viewer = staff_client(Role.VIEWER, merchants=[merchant])

    rows = viewer.get("/api/v1/bins?variance_flagged=true").json()["data"]["results"]

    assert [(row["id"], row["variance_pct"], row["variance_flagged"]) for row in rows] == [
        (shop["beans"].pk, 38.9, True)
    ]
    rows = viewer.get("/api/v1/bins?variance_flagged=false").json()["data"]["results"]
    assert [row["id"] for row in rows] == [shop["milk"].pk]


def test_the_flagged_bins_list_runs_the_same_number_of_queries_for_2_or_30_bins(shop, staff_client, merchant):
    viewer = staff_client(Role.VIEWER, merchants=[merchant])

    def queries_to_list():
        with CaptureQueriesContext(connection) as queries:
            assert viewer.get("/api/v1/bins?variance_flagged=true&page_size=100").status_code == 200
        return len(queries)

    DeviceBin.objects.update(is_variance_flagged=True, use_by_hour=MORNINGS)
    queries_to_list()
    few = queries_to_list()
    for _ in range(28):
        DeviceBinFactory(device=DeviceFactory(merchant=merchant), index=1, is_variance_flagged=True)
    assert queries_to_list() == few


def test_the_admin_bin_page_shows_the_variance_and_filters_by_the_flag(shop, admin_as):
    DeviceBin.objects.filter(pk=shop["beans"].pk).update(variance_pct=38.9, is_variance_flagged=True)
    client = admin_as(Role.VIEWER)

    page = client.get("/admin/inventory/bin/?is_variance_flagged__exact=1")

    assert page.status_code == 200
    text = page.content.decode()
    assert "+38.9%: leak, grinder drift or unrecorded sales" in text
    assert f"/admin/inventory/bin/{shop['beans'].pk}/change/" in text
    assert f"/admin/inventory/bin/{shop['milk'].pk}/change/" not in text
