"""Every dashboard figure against a hand-computed fixture: across the merchant's midnight, with refunds,
unpaid, failed and test orders present, another merchant's data beside it, and days with no record."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from accounts.models import Role
from devices.models import DeviceStatusHour
from operations.dashboard import dashboard_summary, scope_for
from operations.models import AlarmType, Severity
from operations.services import alarms
from orders.models import PaymentStatus
from tests.factories import DeviceBinFactory, DeviceFactory, LocationFactory, OrderFactory

pytestmark = pytest.mark.django_db

# Wednesday 2 December 2026, 02:00 in Shanghai (UTC+8); the default range is 26 November to 2 December.
NOW = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def utc(day, hour, minute=0):
    return datetime(2026, 12 if day < 20 else 11, day, hour, minute, tzinfo=UTC)


def latte(qty, price):
    return [{"product_id": "latte", "name": "Latte", "qty": qty, "unit_price": Decimal(price)}]


@pytest.fixture
def business(merchant, other_merchant, make_user):
    merchant.time_zone = "Asia/Shanghai"
    merchant.save()
    hall, lobby = (
        LocationFactory(merchant=merchant, name="Hall"),
        LocationFactory(merchant=merchant, name="Lobby"),
    )
    seller = DeviceFactory(merchant=merchant, location=hall, alias="Seller", is_online=True, state="idle")
    quiet = DeviceFactory(merchant=merchant, location=lobby, alias="Quiet", is_online=True, state="idle")
    broken = DeviceFactory(merchant=merchant, location=lobby, alias="Broken", is_online=False, state="fault")
    rival = DeviceFactory(merchant=other_merchant, alias="Rival", is_online=True)

    def sale(at, total, **fields):
        return OrderFactory(
            device=seller, device_created_at=at, received_at=NOW, total=Decimal(total), **fields
        )

    sale(utc(1, 16, 30), "18.00")  # 00:30 today
    sale(
        utc(1, 15, 30),
        "20.00",
        items=[{"product_id": "mocha", "name": "Mocha", "qty": 1, "unit_price": Decimal(20)}],
    )  # 23:30 yesterday
    sale(
        utc(1, 17),
        "30.00",
        items=latte(2, "15.00"),
        payment_status=PaymentStatus.PARTIALLY_REFUNDED,
        refunded_total=Decimal("10.00"),
    )  # 01:00 today, 20.00 after the refund
    sale(utc(1, 17), "50.00", payment_status=PaymentStatus.UNPAID)
    sale(utc(1, 17), "9.00", payment_status=PaymentStatus.FAILED)
    sale(utc(1, 17), "15.00", payment_status=PaymentStatus.REFUNDED, refunded_total=Decimal("15.00"))
    sale(utc(1, 17), "99.00", is_test=True)
    sale(utc(25, 15), "40.00")  # 23:00 on 25 November: before the range
    OrderFactory(device=rival, device_created_at=utc(1, 17), total=Decimal("77.00"))

    DeviceBinFactory(device=seller, index=1, material_code="MILK-POWDER", remaining=50, level_pct=5)
    DeviceBinFactory(device=seller, index=2, material_code="SUGAR", remaining=0, level_pct=0)
    DeviceBinFactory(device=quiet, index=1, material_code="BEAN-ARABICA", remaining=800, level_pct=80)
    alarms.open_or_bump_alarm(broken, AlarmType.OFFLINE, Severity.CRITICAL, message="Gone")
    alarms.open_or_bump_alarm(rival, AlarmType.OFFLINE, Severity.CRITICAL, message="Rival gone")
    # 1 December 00:00-01:00 in Shanghai: the seller online half of it, the quiet one all of it;
    # 2 December 00:00-01:00: the seller all of it. No other day has a record.
    for device, hour, online in (
        (seller, utc(30, 16), 1800),
        (quiet, utc(30, 16), 3600),
        (seller, utc(1, 16), 3600),
    ):
        DeviceStatusHour.objects.create(device=device, hour=hour, online_s=online, known_s=3600, samples=12)
    DeviceStatusHour.objects.create(device=rival, hour=utc(30, 16), online_s=0, known_s=3600, samples=1)
    viewer = make_user(Role.VIEWER, merchants=[merchant])
    return {"viewer": viewer, "seller": seller, "quiet": quiet, "hall": hall, "lobby": lobby}


def summary(user, **scope):
    return dashboard_summary(scope_for(user, now=NOW, **scope), now=NOW)


def test_every_figure_of_the_dashboard(business):
    figures = summary(business["viewer"])

    assert (figures["time_zone"], figures["from"], figures["to"]) == (
        "Asia/Shanghai",
        "2026-11-26",
        "2026-12-02",
    )
    assert figures["machines"] == {
        "total": 3,
        "online": 2,
        "offline": 1,
        "in_fault": 1,
        "online_rate": 0.6667,
    }
    assert figures["sales_today"] == [
        {"currency": "CNY", "orders": 2, "amount": "38.00", "average_ticket": "19.00"}
    ]
    assert figures["sales"] == [
        {"currency": "CNY", "orders": 3, "amount": "58.00", "average_ticket": "19.33"}
    ]
    assert figures["sales_per_day"] == [
        {"date": "2026-12-01", "currency": "CNY", "orders": 1, "amount": "20.00"},
        {"date": "2026-12-02", "currency": "CNY", "orders": 2, "amount": "38.00"},
    ]
    assert figures["sales_per_hour"] == [
        {"hour": 0, "currency": "CNY", "orders": 1, "amount": "18.00"},
        {"hour": 1, "currency": "CNY", "orders": 1, "amount": "20.00"},
        {"hour": 23, "currency": "CNY", "orders": 1, "amount": "20.00"},
    ]
    # Recorded connectivity only: two days have records, the others no point at all.
    assert figures["online_rate_per_day"] == [
        {"date": "2026-12-01", "online_rate": 0.75},
        {"date": "2026-12-02", "online_rate": 1.0},
    ]
    assert figures["top_products"] == [
        {"product_id": "latte", "name": "Latte", "currency": "CNY", "qty": 3, "amount": "48.00"},
        {"product_id": "mocha", "name": "Mocha", "currency": "CNY", "qty": 1, "amount": "20.00"},
    ]
    assert [(m["name"], m["orders"], m["amount"]) for m in figures["top_machines"]] == [
        ("Seller", 3, "58.00")
    ]
    assert [m["name"] for m in figures["silent_machines"]] == ["Quiet", "Broken"]  # online ones first
    assert figures["open_alarms"] == {"info": 0, "warning": 0, "critical": 1, "unacknowledged": 1}
    assert figures["bins"] == {"low": 1, "empty": 1}
    assert (figures["pending_commands"], figures["running_rollouts"]) == (0, 0)


def test_a_location_narrows_every_figure(business):
    figures = summary(business["viewer"], location_id=business["lobby"].pk)

    assert figures["machines"]["total"] == 2 and figures["sales"] == [] and figures["sales_per_day"] == []
    assert figures["online_rate_per_day"] == [{"date": "2026-12-01", "online_rate": 1.0}]
    assert figures["open_alarms"]["critical"] == 1 and figures["bins"] == {"low": 0, "empty": 0}


def test_another_merchants_figures_are_never_counted_or_reachable(
    business, make_user, other_merchant, merchant
):
    rival = make_user(Role.VIEWER, merchants=[other_merchant])

    theirs = summary(rival)

    assert theirs["machines"]["total"] == 1
    assert [f["amount"] for f in theirs["sales_today"]] == ["77.00"]
    from coffeeshop.exceptions import Invalid

    for scope in ({"merchant_id": merchant.pk}, {"location_id": business["hall"].pk}):
        with pytest.raises(Invalid):
            summary(rival, **scope)


def test_the_api_answers_the_same_figures_and_refuses_bad_ranges(business, staff_client, merchant):
    client = staff_client(Role.VIEWER, [merchant])

    reply = client.get("/api/v1/dashboard/summary", {"from": "2026-11-26", "to": "2026-12-02"})
    backwards = client.get("/api/v1/dashboard/summary", {"from": "2026-12-02", "to": "2026-11-26"})
    nonsense = client.get("/api/v1/dashboard/summary", {"from": "yesterday"})

    data = reply.json()["data"]
    expected = summary(business["viewer"], first_day=date(2026, 11, 26), last_day=date(2026, 12, 2))
    assert data["sales"] == expected["sales"] and data["top_products"] == expected["top_products"]
    assert data["online_rate_per_day"] == expected["online_rate_per_day"]
    assert backwards.status_code == 400 and "from" in backwards.json()["error"]["details"]["fields"]
    assert nonsense.status_code == 400 and "from" in nonsense.json()["error"]["details"]["fields"]
