"""Exports of the filtered order list run as background jobs whose file downloads when done."""

import csv

import pytest

from accounts.models import Role
from operations.models import TaskJob
from orders.services import run_orders_export
from orders.services.export import COLUMNS
from tests.orders.test_ingest_smoke import order as order_body

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def sold(machine):
    """Three orders: two paid, one unpaid, one with a name that would run as a spreadsheet formula."""
    formula = order_body(
        "X-3", items=[{"product_id": "evil", "name": '=HYPERLINK("x")', "qty": 1, "unit_price": "36.00"}]
    )
    reply = machine.post(
        f"/api/v1/devices/{machine.device.pk}/orders/create",
        {
            "orders": [
                order_body("X-1"),
                order_body("X-2", payment={"method": "cash", "status": "unpaid"}),
                formula,
            ]
        },
        format="json",
    )
    assert [r["result"] for r in reply.json()["data"]["results"]] == ["accepted"] * 3
    return machine


def run_export(client, query: str, django_capture_on_commit_callbacks) -> dict:
    queued: list[int] = []
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(f"/api/v1/orders/export?{query}")
    assert started.status_code == 202, started.content
    job_id = started.json()["data"]["id"]
    assert started.json()["data"]["status"] == "pending"
    queued.append(job_id)
    run_orders_export(job_id)  # what the worker runs; the Celery wiring is tested end to end elsewhere
    return client.get(f"/api/v1/jobs/{job_id}").json()["data"]


def download_rows(client, job: dict) -> list[list[str]]:
    response = client.get(job["download_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    return list(csv.reader(b"".join(response.streaming_content).decode("utf-8-sig").splitlines()))


def test_export_of_the_filtered_list_downloads_exactly_the_matching_orders(
    sold, staff_client, merchant, django_capture_on_commit_callbacks
):
    viewer = staff_client(Role.VIEWER, [merchant])
    job = run_export(viewer, "payment_status=paid", django_capture_on_commit_callbacks)
    assert job["status"] == "succeeded" and job["progress"] == 100 and job["result_rows"] == 2
    rows = download_rows(viewer, job)
    assert rows[0] == COLUMNS
    assert sorted(row[1] for row in rows[1:]) == ["X-1", "X-3"]
    by_id = {row[1]: dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]}
    assert by_id["X-1"]["total"] == "36.00" and by_id["X-1"]["items"] == "2× Latte"
    assert by_id["X-3"]["items"] == '1× =HYPERLINK("x")'


def test_cells_that_would_run_as_formulas_are_defused(
    sold, staff_client, merchant, django_capture_on_commit_callbacks
):
    sold.post(
        f"/api/v1/devices/{sold.device.pk}/orders/create",
        order_body("X-4", payment={"method": "wechat", "status": "paid", "transaction_id": "+1-555"}),
        format="json",
    )
    viewer = staff_client(Role.VIEWER, [merchant])
    rows = download_rows(
        viewer, run_export(viewer, "payment_method=wechat", django_capture_on_commit_callbacks)
    )
    transaction_ids = {row[1]: row[COLUMNS.index("transaction_id")] for row in rows[1:]}
    assert transaction_ids["X-4"] == "'+1-555"
    assert transaction_ids["X-1"] == "wx-4200001234"


def test_an_export_holds_only_what_its_creator_may_see_and_only_they_may_download_it(
    sold, staff_client, merchant, other_merchant, django_capture_on_commit_callbacks
):
    owner = staff_client(Role.OPS, [merchant])
    job = run_export(owner, "", django_capture_on_commit_callbacks)
    stranger = staff_client(Role.ADMIN, [other_merchant])
    assert stranger.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert stranger.get(job["download_url"]).status_code == 404
    outsider_job = run_export(stranger, "", django_capture_on_commit_callbacks)
    assert outsider_job["result_rows"] == 0
    assert download_rows(stranger, outsider_job)[1:] == []


def test_a_bad_filter_is_refused_before_any_job_is_queued(staff_client, merchant):
    viewer = staff_client(Role.VIEWER, [merchant])
    response = viewer.post("/api/v1/orders/export?payment_status=nonsense")
    assert response.status_code == 400
    assert "payment_status" in response.json()["error"]["details"]["fields"]
    assert not TaskJob.objects.exists()


def test_a_canceled_job_never_runs_and_running_it_twice_writes_one_file(
    sold, staff_client, merchant, django_capture_on_commit_callbacks
):
    viewer = staff_client(Role.VIEWER, [merchant])
    started = viewer.post("/api/v1/orders/export")
    job_id = started.json()["data"]["id"]
    canceled = viewer.post(f"/api/v1/jobs/{job_id}/cancel").json()["data"]
    assert canceled["status"] == "canceled"
    assert run_orders_export(job_id) is None
    assert not TaskJob.objects.get(pk=job_id).result_file

    done = run_export(viewer, "", django_capture_on_commit_callbacks)
    assert run_orders_export(done["id"]) is None  # a second delivery of the same task does nothing
    assert TaskJob.objects.get(pk=done["id"]).result_rows == 3
