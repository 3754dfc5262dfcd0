"""seed-demo puts a week of sales and connectivity behind the dashboard of both demo merchants, once:
every figure the rollups give is the one the orders give, each merchant's in its own currency, and a
second run changes nothing."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from accounts.models import Merchant, User
from audit.models import OperationLog
from coffeeshop.demo.history import order_input
from devices.models import Device, DeviceStatusHistory, DeviceStatusHour
from devices.services.history_rollup import HOUR_FIELDS, fold_hour
from devices.services.registration import register_device
from operations.dashboard import dashboard_summary, scope_for
from orders.models import DeviceSalesDay, Order, Refund, SalesHour
from orders.services.ingest import ingest_orders
from simulator import OrderNumbers, build_fleet
from simulator.cli import default_state_file

pytestmark = pytest.mark.django_db

# 00:30 on 8 December in Shanghai (its day has just begun), 16:30 on 7 December in London.
NOW = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)
SEED = ("seed-demo", "--fleet-size=3", "--london-fleet-size=2", f"--now={NOW.isoformat()}")


def _counts() -> dict:
    counts = {
        model.__name__: model.objects.count()
        for model in (Device, Order, Refund, DeviceStatusHistory, DeviceStatusHour, SalesHour, DeviceSalesDay)
    }
    # The demo users are written again on every run (their passwords reset to the README's); nothing else.
    counts["OperationLog"] = OperationLog.objects.exclude(action__startswith="user.").count()
    return counts


@pytest.fixture
def seeded(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command(*SEED, verbosity=0)
    return {m.name: m for m in Merchant.objects.all()}


def _scope(merchant):
    admin = User.objects.get(email="admin@example.com")
    today = scope_for(admin, merchant_id=merchant.pk, now=NOW).last_day
    return scope_for(admin, merchant_id=merchant.pk, first_day=today - timedelta(days=7), now=NOW), today


def test_each_merchant_has_its_machines_placed_and_seven_days_of_sales_in_its_own_currency(seeded):
    for name, prefix, size, currency in (
        ("Demo Coffee Co", "SIM", 3, "CNY"),
        ("Bean Machine Ltd", "BML", 2, "GBP"),
    ):
        merchant = seeded[name]
        devices = Device.objects.filter(merchant=merchant).order_by("serial")
        assert [d.serial for d in devices] == [f"{prefix}-{n:06d}" for n in range(1, size + 1)]
        locations = list(merchant.locations.order_by("pk"))
        assert [d.location for d in devices] == [locations[n % len(locations)] for n in range(size)]
        scope, today = _scope(merchant)
        per_day = {day["date"]: day for day in dashboard_summary(scope, now=NOW)["sales_per_day"]}
        for back in range(1, 8):
            day = (today - timedelta(days=back)).isoformat()
            assert per_day[day]["orders"] > 0, f"{name} sold nothing on {day}"
        orders = Order.objects.filter(merchant=merchant)
        assert set(orders.values_list("currency", flat=True)) == {currency}
        assert set(SalesHour.objects.filter(merchant=merchant).values_list("currency", flat=True)) == {
            currency
        }
        assert set(DeviceSalesDay.objects.filter(merchant=merchant).values_list("currency", flat=True)) == {
            currency
        }
        assert not orders.filter(device_created_at__gt=NOW).exists()
        statuses = Counter(orders.values_list("payment_status", flat=True))
        not_paid = (statuses["unpaid"] + statuses["failed"]) / orders.count()
        assert 0.02 < not_paid < 0.09, statuses


def test_every_dashboard_figure_from_the_rollups_is_the_one_the_orders_give(seeded):
    for merchant in seeded.values():
        scope, _ = _scope(merchant)
        from_rollups = dashboard_summary(scope, now=NOW)
        assert from_rollups["sales"] and len(from_rollups["sales"]) == 1, "one currency, never mixed"
        assert from_rollups == dashboard_summary(scope, now=NOW, from_orders=True)


def test_the_refunds_never_exceed_what_was_paid_and_are_what_the_orders_say(seeded):
    refunds = Refund.objects.all()
    assert 0 < refunds.count() < Order.objects.count() * 0.03
    by_order = dict(
        refunds.values_list("order_id").annotate(total=Sum("amount")).values_list("order_id", "total")
    )
    for order in Order.objects.filter(pk__in=by_order):
        assert order.refunded_total == by_order[order.pk] <= order.total
        assert order.payment_status in {"refunded", "partially_refunded"}
    assert Order.objects.exclude(pk__in=by_order).filter(refunded_total__gt=Decimal("0")).count() == 0
    assert all(r.created_at <= NOW for r in refunds)


def _hours() -> dict:
    return {
        (h.device_id, h.hour): [getattr(h, f) for f in HOUR_FIELDS] for h in DeviceStatusHour.objects.all()
    }


def test_the_online_rate_has_a_point_a_day_folded_from_recorded_connectivity(seeded):
    for merchant in seeded.values():
        scope, today = _scope(merchant)
        points = dashboard_summary(scope, now=NOW)["online_rate_per_day"]
        full_days = [p for p in points if p["date"] < today.isoformat()]
        assert [p["date"] for p in full_days] == [
            (today - timedelta(days=back)).isoformat() for back in range(7, 0, -1)
        ]
        assert all(0.85 < p["online_rate"] <= 1 for p in points)
        assert any(p["online_rate"] < 1 for p in points), "a few machines dropped out now and then"
    # The hours are what the fold makes of the raw records: folding them again changes nothing.
    folded = {
        (h.device_id, h.hour): [getattr(h, f) for f in HOUR_FIELDS] for h in DeviceStatusHour.objects.all()
    }
    for hour in {hour for _, hour in folded}:
        fold_hour(hour)
    assert {
        (h.device_id, h.hour): [getattr(h, f) for f in HOUR_FIELDS] for h in DeviceStatusHour.objects.all()
    } == folded


def test_a_second_run_changes_nothing_and_the_live_fleet_numbers_on_after_the_history(seeded, settings):
    before = _counts()
    call_command(*SEED, verbosity=0)
    call_command("seed-demo", "--fleet-size=3", "--london-fleet-size=2", verbosity=0)  # later, same fleet
    assert _counts() == before
    numbers = OrderNumbers(default_state_file(settings.DATA_DIR, "SIM"))
    for device in Device.objects.filter(serial__startswith="SIM-"):
        used = [int(o.rsplit("-", 1)[1]) for o in device.orders.values_list("machine_order_id", flat=True)]
        assert numbers.first_free(device.serial) > max(used), "a live sale today cannot reuse an order id"


def test_the_operation_log_shows_people_nothing_new(seeded):
    people = OperationLog.objects.filter(source__in=[OperationLog.Source.ADMIN, OperationLog.Source.API])
    assert people.count() == 0


def test_on_a_database_the_live_fleet_has_sold_on_its_machines_keep_their_data(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command("seed-demo", "--fleet-size=0", "--london-fleet-size=0", "--no-history", verbosity=0)
    (live,) = build_fleet(1, "SIM", seed=5)
    secret = Merchant.objects.get(name="Demo Coffee Co").provisioning_secret
    registration = register_device(
        serial=live.serial, model=live.model, firmware=live.firmware, provisioning_secret=secret
    )
    ingest_orders(registration.device.pk, [order_input(live.make_order(NOW - timedelta(hours=1)).body)])

    call_command(*SEED, verbosity=0)

    assert Order.objects.filter(device__serial="SIM-000001").count() == 1, "its live sale, and no history"
    assert Order.objects.filter(device__serial="SIM-000002").count() > 100
    scope, _ = _scope(Merchant.objects.get(name="Demo Coffee Co"))
    assert dashboard_summary(scope, now=NOW) == dashboard_summary(scope, now=NOW, from_orders=True)
