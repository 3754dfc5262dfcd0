"""The admin's home page is the dashboard: the selector's figures for the reader's merchants only,
narrowed by the filters, with the API URL live.js refreshes them from."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import Role
from tests.factories import DeviceFactory, LocationFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def figure(page: str, name: str) -> str:
    match = re.search(rf'data-figure="{re.escape(name)}">([^<]*)<', page)
    assert match, name
    return match.group(1)


@pytest.fixture
def shops(merchant, other_merchant):
    hall = LocationFactory(merchant=merchant, name="Hall")
    ours = DeviceFactory(merchant=merchant, location=hall, is_online=True)
    DeviceFactory(merchant=merchant, is_online=False, state="fault")
    theirs = DeviceFactory(merchant=other_merchant, is_online=True)
    OrderFactory(device=ours, total=Decimal("18.00"))
    OrderFactory(device=theirs, total=Decimal("777.00"))
    return hall


def signed_in(make_user, role, **extra) -> Client:
    client = Client()
    client.force_login(make_user(role, **extra))
    return client


def test_the_home_page_is_the_dashboard_of_the_readers_merchant(make_user, merchant, shops):
    page = signed_in(make_user, Role.VIEWER, merchants=[merchant]).get("/admin/").content.decode()

    assert (figure(page, "machines.online"), figure(page, "machines.total")) == ("1", "2")
    assert figure(page, "machines.in_fault") == "1"
    assert "18.00" in page and "777.00" not in page
    assert 'data-live="dashboard" data-url="/api/v1/dashboard/summary?from=' in page
    assert "Asia/Shanghai" in page  # the days the figures are counted in


def test_the_filters_narrow_the_dashboard_and_the_live_refresh_alike(make_user, merchant, shops):
    client = signed_in(make_user, Role.ADMIN, is_platform_staff=True)

    everyone = client.get("/admin/").content.decode()
    hall = client.get("/admin/", {"location": shops.pk}).content.decode()

    assert figure(everyone, "machines.total") == "3"
    assert figure(hall, "machines.total") == "1"
    assert f"location={shops.pk}" in hall
