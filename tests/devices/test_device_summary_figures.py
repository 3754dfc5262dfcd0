"""A machine's summary: its sales today and this week as its merchant's days (paid, net of refunds, one
figure per currency), its uptime from recorded connectivity, what is wrong with it and what waits."""

import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Role
from devices.selectors import uptime_pct
from operations.models import AlarmType, Severity
from operations.services import alarms, commands
from orders.models import PaymentStatus
from orders.summary import device_sales
from tests.factories import DeviceBinFactory, DeviceFactory, DeviceStatusHistoryFactory, OrderFactory

pytestmark = pytest.mark.django_db

# Wednesday 2 December 2026, 02:00 in Shanghai (UTC+8): today began at 16:00 UTC on the 1st, the week
# on Monday 30 November at 00:00 Shanghai (16:00 UTC on Sunday the 29th).
NOW = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def sold(device, at, total, **fields):
    return OrderFactory(device=device, device_created_at=at, received_at=NOW, total=Decimal(total), **fields)


@pytest.fixture
def machine(merchant):
    merchant.time_zone = "Asia/Shanghai"
    merchant.save()
    return DeviceFactory(merchant=merchant)


def test_sales_today_and_this_week_are_the_merchants_days_paid_and_net_of_refunds(machine):
    sold(machine, datetime(2026, 12, 1, 16, 30, tzinfo=UTC), "18.00")  # today 00:30
    sold(machine, datetime(2026, 12, 1, 15, 30, tzinfo=UTC), "20.00")  # yesterday 23:30: this week
    sold(
        machine,
        datetime(2026, 12, 1, 17, 0, tzinfo=UTC),
        "30.00",
        payment_status=PaymentStatus.PARTIALLY_REFUNDED,
        refunded_total=Decimal("10.00"),
    )
    sold(machine, datetime(2026, 12, 1, 17, 0, tzinfo=UTC), "50.00", payment_status=PaymentStatus.UNPAID)
    sold(machine, datetime(2026, 12, 1, 17, 0, tzinfo=UTC), "9.00", payment_status=PaymentStatus.FAILED)
    sold(
        machine,
        datetime(2026, 12, 1, 17, 0, tzinfo=UTC),
        "15.00",
        payment_status=PaymentStatus.REFUNDED,
        refunded_total=Decimal("15.00"),
    )
    sold(machine, datetime(2026, 12, 1, 17, 0, tzinfo=UTC), "99.00", is_test=True)
    sold(machine, datetime(2026, 12, 1, 17, 5, tzinfo=UTC), "5.00", currency="USD")
    sold(machine, datetime(2026, 11, 29, 15, 0, tzinfo=UTC), "40.00")  # Sunday 23:00: last week

    sales = device_sales(machine, NOW)["sales"]

    assert sales["time_zone"] == "Asia/Shanghai"
    assert sales["today"]["since"] == datetime(2026, 12, 2, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    assert sales["today"]["figures"] == [
        {"currency": "CNY", "orders": 2, "amount": "38.00"},
        {"currency": "USD", "orders": 1, "amount": "5.00"},
    ]
    assert sales["this_week"]["since"] == datetime(2026, 11, 30, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    assert sales["this_week"]["figures"] == [
        {"currency": "CNY", "orders": 3, "amount": "58.00"},
        {"currency": "USD", "orders": 1, "amount": "5.00"},
    ]


def test_uptime_is_the_share_of_the_window_online_from_recorded_connectivity(machine):
    since = NOW - timedelta(hours=24)
    for hours, online in ((-1, True), (6, False), (12, True)):
        DeviceStatusHistoryFactory(
            device=machine, recorded_at=since + timedelta(hours=hours), is_online=online
        )

    assert uptime_pct(machine, since, NOW) == 75.0  # offline from 06:00 to 12:00 of 24 hours
    assert uptime_pct(DeviceFactory(merchant=machine.merchant), since, NOW) is None  # nothing recorded


def test_the_summary_endpoint_says_what_sold_what_is_wrong_and_what_waits(staff_client, machine, make_user):
    zone = zoneinfo.ZoneInfo("Asia/Shanghai")
    today = timezone.localtime(timezone.now(), zone).replace(hour=0, minute=0, second=0, microsecond=0)
    sold(machine, today, "18.00")
    machine.package_version = "2026.12.1"
    machine.save()
    DeviceBinFactory(device=machine, index=1, material_code="BEAN-ARABICA", remaining=50, level_pct=5)
    DeviceBinFactory(device=machine, index=2, material_code="MILK-POWDER", remaining=800, level_pct=80)
    alarms.open_or_bump_alarm(machine, AlarmType.OFFLINE, Severity.CRITICAL, message="Gone")
    ops = make_user(Role.OPS, merchants=[machine.merchant])
    commands.send_command(machine, "clean", {"program": "rinse"}, user=ops)
    other = DeviceFactory()  # another merchant's machine and its sale
    sold(other, today, "77.00")

    reply = staff_client(Role.VIEWER, [machine.merchant]).get(f"/api/v1/devices/{machine.pk}/summary")
    foreign = staff_client(Role.VIEWER, [machine.merchant]).get(f"/api/v1/devices/{other.pk}/summary")

    data = reply.json()["data"]
    assert data["sales"]["today"]["figures"] == [{"currency": "CNY", "orders": 1, "amount": "18.00"}]
    assert data["open_alarms"] == {"info": 0, "warning": 0, "critical": 1}
    assert (data["pending_commands"], data["low_bins"], data["package_version"]) == (1, [1], "2026.12.1")
    assert "uptime_pct_24h" in data and "last_heartbeat_at" in data
    assert foreign.status_code == 404
