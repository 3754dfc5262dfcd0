"""Operations → Analytics: every reader (Admin, Ops, Viewer) sees their merchant's sales by the chosen
dimension, or uptime per day, as a table and a chart, and an export lands on its job's page."""

import json
import re

import pytest
from django.test import Client
from django.utils.http import urlencode

from accounts.models import Role
from operations.models import TaskJob
from tests.operations.analytics_business import build_business

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

RANGE = {"start": "2026-12-01", "end": "2026-12-02"}
RANGE_PARAMS = {"from": "2026-12-01", "to": "2026-12-02"}


@pytest.fixture
def business(merchant, other_merchant):
    return build_business(merchant, other_merchant)


def signed_in(make_user, role, **extra) -> Client:
    client = Client()
    client.force_login(make_user(role, **extra))
    return client


def chart_of(page: str) -> dict:
    match = re.search(r'data-value="([^"]*)"', page)
    assert match, "no chart on the page"
    return json.loads(match.group(1).replace("&quot;", '"'))


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPS, Role.VIEWER])
def test_every_reader_sees_sales_by_payment_method_in_a_table_and_a_chart(
    business, make_user, merchant, role
):
    client = signed_in(make_user, role, merchants=[merchant])

    reply = client.get("/admin/analytics/", {"view": "payment_method", **RANGE})

    assert reply.status_code == 200
    page = reply.content.decode()
    assert "WeChat Pay" in page and "Meal card" in page and "38.00" in page
    assert "77.00" not in page and "Rival card" not in page  # the other merchant's sale
    assert 'href="/admin/analytics/"' in page  # the sidebar's entry
    assert "Export XLSX" in page and "Asia/Shanghai" in page
    chart = chart_of(page)
    assert chart["labels"] == ["WeChat Pay", "Meal card", "Cash"]
    assert [(d["label"], d["data"]) for d in chart["datasets"]] == [("CNY", [38.0, 25.0, 12.0]),
                                                                    ("HKD", [0, 0, 40.0])]  # fmt: skip


def test_the_hour_chart_has_every_hour_of_the_day(business, make_user, merchant):
    client = signed_in(make_user, Role.VIEWER, merchants=[merchant])

    page = client.get("/admin/analytics/", {"view": "hour", **RANGE})

    chart = chart_of(page.content.decode())
    assert len(chart["labels"]) == 24 and chart["labels"][9] == "09:00"
    assert chart["datasets"][0]["data"][0] == 32.0 and chart["datasets"][0]["data"][23] == 18.0


def test_uptime_shows_the_fleet_and_each_machine_per_day(business, make_user, merchant):
    client = signed_in(make_user, Role.VIEWER, merchants=[merchant])

    page = client.get("/admin/analytics/", {"view": "uptime", **RANGE}).content.decode()

    assert chart_of(page)["labels"] == ["2026-12-01", "2026-12-02"]
    assert "CM2K-LOBBY" in page and "Rival" not in page


def test_another_merchants_merchant_filter_is_refused_on_the_page(
    business, make_user, merchant, other_merchant
):
    client = signed_in(make_user, Role.VIEWER, merchants=[merchant])

    reply = client.get("/admin/analytics/", {"merchant": other_merchant.pk, "view": "merchant", **RANGE})

    page = reply.content.decode()
    assert reply.status_code == 200 and "77.00" not in page and "Other Beans" not in page


def test_an_export_lands_on_its_jobs_page(business, make_user, merchant, django_capture_on_commit_callbacks):
    client = signed_in(make_user, Role.VIEWER, merchants=[merchant])

    with django_capture_on_commit_callbacks():
        reply = client.post("/admin/analytics/export/?view=weekday&" + urlencode(RANGE), {"format": "xlsx"})

    job = TaskJob.objects.get()
    assert reply.status_code == 302 and reply["Location"] == f"/admin/operations/taskjob/{job.pk}/change/"
    assert job.kind == TaskJob.Kind.ANALYTICS_EXPORT
    assert job.params == {"report": "sales", "dimension": "weekday", "format": "xlsx", **RANGE_PARAMS}
    job_page = client.get(reply["Location"]).content.decode()
    assert "Download XLSX" in job_page and 'data-live="job"' in job_page


def test_platform_staff_see_every_merchant(business, make_user):
    client = signed_in(make_user, Role.ADMIN, is_platform_staff=True)

    page = client.get("/admin/analytics/", {"view": "merchant", **RANGE}).content.decode()

    assert "Brew Co" in page and "Other Beans" in page and "77.00" in page


def test_an_export_of_a_backwards_range_is_refused_and_starts_no_job(make_user, merchant):
    client = signed_in(make_user, Role.VIEWER, merchants=[merchant])

    backwards = urlencode({"view": "hour", "start": "2026-12-02", "end": "2026-12-01"})
    reply = client.post(f"/admin/analytics/export/?{backwards}", {"format": "csv"})

    assert reply.status_code == 302 and reply["Location"].startswith("/admin/analytics/?")
    assert not TaskJob.objects.exists()
    assert "The range starts after it ends." in client.get(reply["Location"]).content.decode()
