"""A machine's history chart (API and admin page): online %, state changes and temperature per hour or
per merchant's day, read from the folded hours; a day without records has no point, not a zero."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from devices.models import DeviceStatusHour
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

UTC_DAY = datetime(2026, 11, 29, tzinfo=UTC)


def hour(device, at, online_s, known_s=3600, temperature=None, **fields):
    return DeviceStatusHour(
        device=device,
        hour=at,
        online_s=online_s,
        known_s=known_s,
        samples=fields.pop("samples", 4),
        avg_temperature_c=temperature,
        min_temperature_c=fields.pop("low", temperature),
        max_temperature_c=fields.pop("high", temperature),
        **fields,
    )


@pytest.fixture
def machine(merchant):
    merchant.time_zone = "Asia/Shanghai"  # UTC+8: a local day runs from 16:00 UTC to 16:00 UTC
    merchant.save()
    device = DeviceFactory(merchant=merchant)
    DeviceStatusHour.objects.bulk_create(
        [
            # Monday 30 November, Shanghai: its first hour and its last.
            hour(device, datetime(2026, 11, 29, 16, tzinfo=UTC), 3600, temperature=90.0, low=88.0, high=91.0),
            hour(
                device,
                datetime(2026, 11, 30, 15, tzinfo=UTC),
                1800,
                temperature=94.0,
                low=93.0,
                high=97.0,
                offline_events=1,
                state_changes=2,
            ),
            # Tuesday 1 December: nothing recorded. Wednesday 2 December: offline for the half hour known.
            hour(device, datetime(2026, 12, 1, 16, tzinfo=UTC), 0, known_s=1800, offline_events=1),
        ]
    )
    return device


def chart(client, device, **params):
    return client.get(f"/api/v1/devices/{device.pk}/history/chart", params)


def chart_data(client, device, **params) -> dict:
    reply = chart(client, device, **params)
    assert reply.status_code == 200, reply.content
    return reply.json()["data"]


def test_daily_points_are_the_merchants_days_and_a_day_without_records_has_none(staff_client, machine):
    client = staff_client(Role.VIEWER, merchants=[machine.merchant])

    body = chart_data(
        client, machine, **{"from": "2026-11-29T00:00:00Z", "to": "2026-12-03T00:00:00Z"}, resolution="day"
    )

    assert body["time_zone"] == "Asia/Shanghai" and body["resolution"] == "day"
    assert [(p["at"], p["online_pct"], p["known_s"]) for p in body["points"]] == [
        ("2026-11-30T00:00:00+08:00", 75.0, 7200.0),
        ("2026-12-02T00:00:00+08:00", 0.0, 1800.0),
    ]
    monday = body["points"][0]
    assert (monday["avg_temperature_c"], monday["min_temperature_c"], monday["max_temperature_c"]) == (
        92.0,
        88.0,
        97.0,
    )
    assert (monday["offline_events"], monday["state_changes"]) == (1, 2)
    assert body["points"][1]["avg_temperature_c"] is None


def test_hourly_points_are_in_the_merchants_time_zone(staff_client, machine):
    client = staff_client(Role.VIEWER, merchants=[machine.merchant])

    body = chart_data(client, machine, **{"from": "2026-11-29T16:00:00Z", "to": "2026-11-30T16:00:00Z"})

    points = body["points"]
    assert body["resolution"] == "hour"
    assert [(p["at"], p["online_pct"], p["avg_temperature_c"]) for p in points] == [
        ("2026-11-30T00:00:00+08:00", 100.0, 90.0),
        ("2026-11-30T23:00:00+08:00", 50.0, 94.0),
    ]


def test_another_merchants_machine_is_not_found(staff_client, machine, other_merchant):
    client = staff_client(Role.ADMIN, merchants=[other_merchant])

    assert chart(client, machine).status_code == 404


@pytest.mark.parametrize(
    "params, field",
    [
        ({"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "resolution": "hour"}, "resolution"),
        ({"resolution": "minute"}, "resolution"),
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
    ],
)
def test_a_bad_range_is_refused(staff_client, machine, expect_api_error, params, field):
    client = staff_client(Role.VIEWER, merchants=[machine.merchant])

    error = expect_api_error(chart(client, machine, **params), 400, "VALIDATION_ERROR")

    assert field in json.dumps(error)


def queries_for_days(staff_client, merchant, days) -> tuple[int, int]:
    device = DeviceFactory(merchant=merchant)
    DeviceStatusHour.objects.bulk_create(
        [hour(device, UTC_DAY + timedelta(hours=n), 3000, temperature=90.0) for n in range(days * 24)]
    )
    client = staff_client(Role.VIEWER, merchants=[merchant])
    end = (UTC_DAY + timedelta(days=days)).isoformat()
    with CaptureQueriesContext(connection) as queries:
        body = chart_data(client, device, **{"from": UTC_DAY.isoformat(), "to": end})
    return len(queries), len(body["points"])


def test_the_chart_costs_the_same_queries_at_one_day_and_at_ninety(staff_client, merchant):
    one_day, one_day_points = queries_for_days(staff_client, merchant, 1)
    ninety, ninety_points = queries_for_days(staff_client, merchant, 90)

    assert one_day == ninety
    # Hourly for a day, daily beyond a week: 90 UTC days touch 91 of the merchant's days.
    assert (one_day_points, ninety_points) == (24, 91)


def test_the_machine_page_shows_the_weeks_online_history(make_user, machine):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    DeviceStatusHour.objects.bulk_create([hour(machine, now - timedelta(hours=3), 2700, temperature=91.0)])
    client = Client()
    client.force_login(make_user(Role.VIEWER, merchants=[machine.merchant]))

    content = client.get(reverse("admin:devices_device_change", args=[machine.pk])).content.decode()

    assert 'data-chart="history"' in content and "Asia/Shanghai" in content
    assert "75.0" in content
