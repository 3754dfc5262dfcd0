"""GET /api/v1/analytics/sales and /uptime answer the selector's figures, refuse bad parameters naming
them, and POST /api/v1/analytics/exports writes the report to CSV or XLSX in a background job that every
reader (Viewers too) may start, as for order exports."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openpyxl import load_workbook

from accounts.models import Role
from operations.models import TaskJob
from operations.services.analytics_export import run_analytics_export
from tests.factories import DeviceFactory, LocationFactory, OrderFactory
from tests.operations.analytics_business import build_business, utc

pytestmark = pytest.mark.django_db

RANGE = {"from": "2026-12-01", "to": "2026-12-02"}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def business(merchant, other_merchant):
    return build_business(merchant, other_merchant)


@pytest.fixture
def viewer(staff_client, merchant):
    return staff_client(Role.VIEWER, [merchant])


def fields_of(reply) -> dict:
    assert reply.status_code == 400, reply.content
    return reply.json()["error"]["details"]["fields"]


def test_sales_answer_the_rows_of_the_dimension_in_the_merchants_days(business, viewer):
    data = viewer.get("/api/v1/analytics/sales", {"dimension": "weekday", **RANGE}).json()["data"]

    assert (data["time_zone"], data["from"], data["to"], data["dimension"]) == (
        "Asia/Shanghai",
        "2026-12-01",
        "2026-12-02",
        "weekday",
    )
    assert data["rows"] == [
        {"key": 2, "label": "Tuesday", "currency": "CNY", "orders": 2, "amount": "30.00"},
        {"key": 3, "label": "Wednesday", "currency": "CNY", "orders": 2, "amount": "45.00"},
        {"key": 3, "label": "Wednesday", "currency": "HKD", "orders": 1, "amount": "40.00"},
    ]


def test_uptime_answers_machines_and_fleet_per_day(business, viewer):
    data = viewer.get("/api/v1/analytics/uptime", {**RANGE, "location": business["hall"].pk}).json()["data"]

    assert [(r["date"], r["label"], r["uptime_pct"]) for r in data["machines"]] == [
        ("2026-12-01", "Seller", 25.0),
        ("2026-12-02", "Seller", 100.0),
    ]
    assert data["fleet"] == [
        {"date": "2026-12-01", "uptime_pct": 25.0},
        {"date": "2026-12-02", "uptime_pct": 100.0},
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "dimension"),
        ({"dimension": "colour"}, "dimension"),
        ({"dimension": "hour", "from": "yesterday"}, "from"),
        ({"dimension": "hour", "from": "2026-12-02", "to": "2026-12-01"}, "from"),
        ({"dimension": "hour", "merchant_id": "x"}, "merchant_id"),
        ({"dimension": "hour", "location": "0"}, "location"),
    ],
)
def test_bad_sales_parameters_are_a_400_naming_the_field(viewer, params, field):
    assert field in fields_of(viewer.get("/api/v1/analytics/sales", params))


def test_another_merchants_merchant_or_location_is_a_400_like_an_unknown_one(
    business, viewer, other_merchant, staff_client
):
    theirs = LocationFactory(merchant=other_merchant)

    assert "merchant_id" in fields_of(
        viewer.get("/api/v1/analytics/sales", {"dimension": "merchant", "merchant_id": other_merchant.pk})
    )
    assert "location" in fields_of(viewer.get("/api/v1/analytics/uptime", {"location": theirs.pk}))
    rival = staff_client(Role.VIEWER, [other_merchant])
    rows = rival.get("/api/v1/analytics/sales", {"dimension": "machine", **RANGE}).json()["data"]["rows"]
    assert [(r["label"], r["amount"]) for r in rows] == [("Rival", "77.00")]


def test_the_sales_endpoint_runs_the_same_queries_for_ten_times_the_machines(business, viewer, merchant):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            reply = viewer.get("/api/v1/analytics/sales", {"dimension": "machine", **RANGE})
        assert reply.status_code == 200
        return len(captured)

    queries()  # the first request also fills the content-type cache and the reader's merchants
    few = queries()
    for _ in range(10):
        OrderFactory(device=DeviceFactory(merchant=merchant), device_created_at=utc(12, 2, 3))
    assert queries() == few


def export(client, body, django_capture_on_commit_callbacks) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post("/api/v1/analytics/exports", body, format="json")
    assert started.status_code == 202, started.content
    job = started.json()["data"]
    assert (job["kind"], job["status"]) == ("analytics_export", "pending")
    run_analytics_export(job["id"])  # what the worker runs; the Celery wiring is tested end to end
    return client.get(f"/api/v1/jobs/{job['id']}").json()["data"]


def download(client, job) -> bytes:
    response = client.get(job["download_url"])
    assert response.status_code == 200
    return response, b"".join(response.streaming_content)


def test_a_viewer_exports_sales_by_product_to_csv(business, viewer, django_capture_on_commit_callbacks):
    body = {"report": "sales", "dimension": "product", "format": "csv", "filters": RANGE}
    job = export(viewer, body, django_capture_on_commit_callbacks)

    assert (job["status"], job["progress"], job["result_rows"]) == ("succeeded", 100, 4)
    assert job["params"] == {"report": "sales", "dimension": "product", "format": "csv", **RANGE}
    response, content = download(viewer, job)
    assert response["Content-Type"] == "text/csv"
    assert list(csv.reader(io.StringIO(content.decode("utf-8-sig")))) == [
        ["product", "label", "currency", "qty", "amount"],
        ["latte", "Latte", "CNY", "3", "48.00"],
        ["mocha", "Mocha", "CNY", "1", "25.00"],
        ["americano", "Americano", "CNY", "1", "12.00"],
        ["latte", "Latte", "HKD", "2", "40.00"],
    ]


def test_uptime_exports_to_xlsx_with_the_fleet_after_the_machines(
    business, viewer, django_capture_on_commit_callbacks
):
    body = {"report": "uptime", "format": "xlsx", "filters": RANGE}
    job = export(viewer, body, django_capture_on_commit_callbacks)

    response, content = download(viewer, job)
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(content)).active
    assert [list(row) for row in sheet.iter_rows(values_only=True)] == [
        ["date", "machine_id", "machine", "uptime_pct"],
        ["2026-12-01", business["lobby_machine"].pk, "CM2K-LOBBY", 100],
        ["2026-12-01", business["seller"].pk, "Seller", 25],
        ["2026-12-02", business["seller"].pk, "Seller", 100],
        ["2026-12-01", None, "fleet", 50],
        ["2026-12-02", None, "fleet", 100],
    ]


def test_machine_supplied_names_never_run_as_formulas_in_a_workbook(
    merchant, viewer, django_capture_on_commit_callbacks
):
    device = DeviceFactory(merchant=merchant)
    OrderFactory(device=device, items=[{"product_id": "x", "name": "=1+1", "qty": 1, "unit_price": 18}])
    body = {"report": "sales", "dimension": "product", "format": "xlsx"}
    job = export(viewer, body, django_capture_on_commit_callbacks)

    sheet = load_workbook(io.BytesIO(download(viewer, job)[1])).active
    assert sheet["B2"].value == "'=1+1" and sheet["B2"].data_type == "s"
    assert sheet["E2"].value == 18 and sheet["E2"].data_type == "n"  # the amount, a number to sum


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"report": "sales", "format": "csv"}, "dimension"),
        ({"report": "nonsense", "format": "csv"}, "report"),
        ({"report": "uptime", "format": "pdf"}, "format"),
        ({"report": "uptime", "filters": {"from": "2026-12-02", "to": "2026-12-01"}}, "from"),
    ],
)
def test_a_bad_export_is_refused_before_any_job_is_queued(viewer, body, field):
    reply = viewer.post("/api/v1/analytics/exports", body, format="json")

    fields = fields_of(reply)
    assert field in fields or field in fields.get("filters", {})
    assert not TaskJob.objects.exists()


def test_an_export_of_another_merchants_figures_is_refused(viewer, other_merchant):
    body = {"report": "uptime", "filters": {"merchant_id": other_merchant.pk}}

    assert "merchant_id" in fields_of(viewer.post("/api/v1/analytics/exports", body, format="json"))
    assert not TaskJob.objects.exists()
